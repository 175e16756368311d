"""
The small interface every ticketing platform implements, and the neutral models the sync engine works with.

A provider connects with the organiser's credentials, lists the organiser's sellable forms or events, reads one
form's catalogue, pages through the orders that changed, fetches one order, and maps everything to the neutral
models below. Connection pages, the sync engine, reports, webhooks plumbing and notifications only see these
models, so another platform (Billetweb, Weezevent) is one more module in this package.
"""
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Callable, Iterator, List, Optional

# position / order states in the neutral model
VALID = "valid"
PENDING = "pending"
CANCELED = "canceled"

# payment states in the neutral model
PAID = "paid"
PAYMENT_PENDING = "pending"
REFUNDED = "refunded"
CONTESTED = "contested"
FAILED = "failed"


@dataclass
class RemoteForm:
    ref: str  # what the provider needs to find the form again, e.g. "Event/soiree-de-gala-2026"
    title: str
    url: str = ""
    state: str = ""
    form_type: str = ""


@dataclass
class RemoteQuestion:
    remote_id: str
    label: str
    type: str  # a pretix Question.TYPE_*
    required: bool = False
    options: List[str] = field(default_factory=list)


@dataclass
class RemoteProduct:
    remote_id: str
    name: str
    description: str = ""
    price: Decimal = Decimal("0.00")
    tax_rate: Decimal = Decimal("0.00")  # percent
    free_price: bool = False
    min_price: Optional[Decimal] = None
    max_per_order: Optional[int] = None
    is_addon: bool = False
    is_donation: bool = False
    #: for add-ons: the remote ids of the products they can be bought with
    parents: List[str] = field(default_factory=list)
    #: remote ids of the questions asked for each ticket of this product
    questions: List[str] = field(default_factory=list)


@dataclass
class RemoteDate:
    """One date (session) of the remote event: several become pretix event-series dates, a single one the event's date."""
    remote_id: str
    date_from: datetime
    date_to: Optional[datetime] = None
    name: str = ""


@dataclass
class RemoteCatalog:
    form: RemoteForm
    products: List[RemoteProduct]
    questions: List[RemoteQuestion]
    #: the event's dates; empty when the platform has none (HelloAsso forms)
    dates: List[RemoteDate] = field(default_factory=list)


@dataclass
class RemoteAnswer:
    question_id: Optional[str]
    label: str
    answer: str
    #: platforms that send answers keyed by their label, with no list of questions (Billetweb, Weezevent): the
    #: engine creates a text question the first time it meets the label
    create_question: bool = False


@dataclass
class RemotePosition:
    remote_id: str
    product_id: Optional[str]  # None: match by label
    product_label: str
    price: Decimal
    state: str  # VALID, PENDING or CANCELED
    attendee_first_name: str = ""
    attendee_last_name: str = ""
    attendee_email: str = ""
    answers: List[RemoteAnswer] = field(default_factory=list)
    secret: str = ""
    addon_to: Optional[str] = None  # remote id of the parent position
    is_donation: bool = False
    promo_code: str = ""
    discount: Decimal = Decimal("0.00")
    #: the remote date (:class:`RemoteDate`) of this ticket, for events with several dates
    date_id: Optional[str] = None
    #: when the ticket was scanned at the door on the platform (imported once as a pretix check-in), None if never
    checked_in: Optional[datetime] = None


@dataclass
class RemoteRefund:
    remote_id: str
    amount: Decimal
    date: Optional[datetime]
    done: bool


@dataclass
class RemotePayment:
    remote_id: str
    amount: Decimal
    date: Optional[datetime]
    state: str  # PAID, PAYMENT_PENDING, REFUNDED, CONTESTED, FAILED
    means: str = ""
    installment: Optional[int] = None
    refunds: List[RemoteRefund] = field(default_factory=list)
    #: how much of this payment went to each position (remote item id -> amount)
    shares: dict = field(default_factory=dict)


@dataclass
class RemoteOrder:
    remote_id: str
    date: Optional[datetime]
    updated: Optional[datetime]
    email: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    street: str = ""
    zipcode: str = ""
    city: str = ""
    country: str = ""  # ISO alpha-2
    total: Decimal = Decimal("0.00")
    positions: List[RemotePosition] = field(default_factory=list)
    payments: List[RemotePayment] = field(default_factory=list)
    form_ref: str = ""
    #: answers given once per order (the buyer's form); pretix has no order-level questions, so the engine attaches them
    #: to the order's first ticket, as pretix's checkout does for questions asked once per order
    answers: List[RemoteAnswer] = field(default_factory=list)
    #: opaque markers of this version of the order (e.g. its and its payments' update dates), compared with
    #: :attr:`OrderChange.version`; not part of the order's data (left out of its repr, hence of its fingerprint)
    versions: List[str] = field(default_factory=list, repr=False)


@dataclass
class OrderChange:
    """One row of the platform's "recently changed" listings: this order changed at ``updated``."""
    order_id: str
    order_date: Optional[datetime]
    updated: Optional[datetime]
    #: equal to one of :attr:`RemoteOrder.versions` once the engine has applied this change
    version: str


@dataclass
class OrderPage:
    orders: List[RemoteOrder]
    #: resume point after this page (stored only once the page is committed)
    cursor: Optional[str]


class Provider:
    """The interface; see :class:`pretix_helloasso_bridge.providers.helloasso.HelloAssoProvider`."""
    identifier = ""
    verbose_name = ""

    #: API calls made by this instance (sync reports count them)
    calls = 0
    #: True when a full read lists every order with all its tickets: an order missing from a complete full read
    #: was deleted on the platform, and a ticket missing from an order was deleted too
    complete_listing = False
    #: orders entered by hand on the platform may have no email at all: imported anyway (their tickets must scan)
    orders_without_email = False
    #: how often the periodic sync reads everything again (platforms whose incremental listing misses deletions)
    full_read_every = None

    def test_connection(self) -> dict:
        """Authenticate and read the organisation; raises the core's errors."""
        raise NotImplementedError

    def list_forms(self) -> List[RemoteForm]:
        raise NotImplementedError

    def parse_form_url(self, url: str) -> Optional[str]:
        """A form ref from a public form URL, or None."""
        raise NotImplementedError

    def get_catalog(self, form_ref: str) -> RemoteCatalog:
        raise NotImplementedError

    def changed_orders(self, form_ref: str, since: Optional[datetime] = None, cursor: Optional[str] = None) -> Iterator[OrderPage]:
        """Pages of orders changed since ``since`` (or all), oldest first, resuming after ``cursor``; ends on an empty page."""
        raise NotImplementedError

    def fetch_order(self, remote_id: str) -> RemoteOrder:
        raise NotImplementedError

    def recent_changes(self, form_ref: str, not_before: datetime, last_scan: Optional[datetime],
                       pending: Callable[[List[OrderChange]], List[OrderChange]]) -> Optional[List[OrderChange]]:
        """
        Changes of the form's orders (new orders, cancelled tickets, payments, refunds, chargebacks), newest first,
        down to ``not_before``. ``pending`` gets each page of changes and returns those not applied yet. The reading
        may end early on a page whose oldest change was applied and is older than ``last_scan`` (when the previous
        scan started: it read everything older). Returns the pending changes, or None when the platform cannot list
        changes (the engine then re-reads the orders dated from ``not_before``).
        """
        return None
