"""
Billetweb API v1: :class:`BilletwebClient` only speaks HTTP, :class:`BilletwebProvider` maps Billetweb's events, sessions,
rates and attendees to the neutral models of :mod:`.`.

Research notes: ``shared/docs/billetweb-api.md``. Things that matter here: every answer is a bare JSON array, almost
every value is a string (ids, ``"0"``/``"1"``, euro amounts), dates are naive Europe/Paris with ``0000-00-00 00:00:00``
or ``""`` for "none"; errors may come with a 2xx status as ``{"error": …, "description": …}``; only the per-event routes
are used (a key restricted to some events is refused by the all-events ``/api/attendees``); about 100 requests a minute
per account, and a Cloudflare challenge page (HTML) when requests come too fast. The key travels in the query string:
URLs are never logged (the core client logs operations only).
"""
from datetime import timedelta
from decimal import Decimal
from typing import Iterator, List, Optional
from urllib.parse import parse_qs, urlsplit

from django.utils.translation import gettext, gettext_lazy as _

from pretix_integrations_core.errors import ServiceBadResponse, ServiceConfigurationError, ServiceNotFound, ServiceRateLimited, ServiceRejected
from pretix_integrations_core.httpclient import HttpClient, register_sensitive_path

from . import (
    CANCELED, PAID, PENDING, REFUNDED, VALID, OrderPage, Provider, RemoteAnswer, RemoteCatalog, RemoteDate, RemoteForm, RemoteOrder, RemotePayment,
    RemotePosition, RemoteProduct, RemoteRefund,
)
from .common import AccountBudget, as_id, euros, flag, local_date

SERVICE = "Billetweb"
PRODUCTION_URL = "https://www.billetweb.fr"
#: [ad] ended at 90 requests per 80 s under Billetweb's "100 hits per minute"
BUDGET_LIMIT, BUDGET_WINDOW = 90, 80.0
PAGE_SIZE = 200  # orders per committed page (Billetweb itself does not paginate)
CHALLENGE_MARKERS = (b"cdn-cgi/challenge-platform", b"challenge-platform", b"cf-chl", b"Just a moment")
# the key travels in the query string: urllib3's debug lines of these paths are redacted
for _prefix in ("/api/event", "/api/attendees"):
    register_sensitive_path(_prefix)


class BilletwebChallenge(ServiceRateLimited):
    """Billetweb's firewall answered with a browser challenge page (Cloudflare) instead of data."""
    kind = "challenge"


class BilletwebClient:
    """HTTP only: every method is one API route, returning the parsed JSON array."""

    def __init__(self, base_url, user, key, *, scope, budget=None):
        self.http = HttpClient(SERVICE, (base_url or PRODUCTION_URL).rstrip("/"), scope=scope, read_timeout=60.0, budget=120.0,
                               max_attempts=2, backoff=1.0)
        self.user, self.key = str(user), key
        self.budget = budget or AccountBudget(SERVICE, self.user, limit=BUDGET_LIMIT, window=BUDGET_WINDOW)
        self.calls = 0

    def get(self, path, *, operation, params=None):
        query = {"user": self.user, "key": self.key, "version": "1", **(params or {})}

        def send():
            self.calls += 1
            # every status is read here: an error may be an HTML challenge page, or a JSON error with any status
            return self.http.request("GET", "/api" + path, operation=operation, params=query, retry_safe=False,
                                     ok_statuses=range(300, 600))

        resp = self.budget.call(send, operation)
        content = resp.content or b""
        ctype = resp.headers.get("Content-Type", "")
        if "html" in ctype or any(m in content[:20000] for m in CHALLENGE_MARKERS):
            raise BilletwebChallenge(SERVICE, operation, status=resp.status_code if resp.status_code >= 300 else None, retry_after=300, detail=gettext(
                "Billetweb's firewall answered with a browser challenge page (too many requests in a short time). The sync stops "
                "and goes on by itself in a few minutes."))
        try:
            data = resp.json()
        except ValueError:
            if resp.status_code >= 300:
                raise self.http._map_status(resp, operation)
            raise ServiceBadResponse(SERVICE, operation, status=resp.status_code) from None
        if isinstance(data, dict) and data.get("error"):
            raise self._error(data, operation, resp.status_code)
        if resp.status_code >= 300:
            raise self.http._map_status(resp, operation)
        if not isinstance(data, list):
            raise ServiceBadResponse(SERVICE, operation, status=resp.status_code)
        return data

    @staticmethod
    def _error(data, operation, status):
        code, description = str(data.get("error")), str(data.get("description") or "")
        status = status if status >= 300 else None
        if code == "rate_limiting":
            return ServiceRateLimited(SERVICE, operation, status=status, retry_after=60, detail=gettext(
                "Billetweb's limit of 100 requests a minute for this account was reached (perhaps by another tool using the same "
                "account). The sync goes on by itself later."))
        if "limited rights" in description:
            return ServiceConfigurationError(SERVICE, operation, status=status, detail=gettext(
                "This API key is restricted to some events, and this event is not one of them. In Billetweb (Tools > API), "
                "add the event to the key or create a key for all events."))
        if code in ("unauthorized", "forbidden", "invalid_key", "auth"):
            return ServiceConfigurationError(SERVICE, operation, status=status, detail=gettext(
                "Billetweb refused the user id or the API key."))
        if code in ("not_found", "unknown_event"):
            return ServiceNotFound(SERVICE, operation, status=status)
        return ServiceRejected(SERVICE, operation, status=status, detail=description[:200])

    def events(self):
        return self.get("/events", operation="events", params={"past": "1"})

    def dates(self, event_id):
        return self.get(f"/event/{int(event_id)}/dates", operation="dates", params={"past": "1"})

    def tickets(self, event_id):
        return self.get(f"/event/{int(event_id)}/tickets", operation="tickets")

    def attendees(self, event_id, *, last_update=None):
        params = {}
        if last_update is not None:
            params["last_update"] = str(int(last_update))
        return self.get(f"/event/{int(event_id)}/attendees", operation="attendees", params=params)


class BilletwebProvider(Provider):
    identifier = "billetweb"
    verbose_name = _("Billetweb")
    complete_listing = True
    orders_without_email = True
    full_read_every = timedelta(hours=24)

    def __init__(self, *, base_url, user, key, scope, budget=None):
        self.client = BilletwebClient(base_url, user, key, scope=scope, budget=budget)
        self._events = None
        self.form_ref = None

    @property
    def calls(self):
        return self.client.calls

    # -- connection and events ---------------------------------------------------------------------

    def _event_list(self):
        if self._events is None:
            self._events = self.client.events()
        return self._events

    def test_connection(self) -> dict:
        events = self._event_list()
        return {"events": len(events)}

    def list_forms(self) -> List[RemoteForm]:
        result = []
        for e in self._event_list():
            start = local_date(e.get("start"))
            title = str(e.get("name") or as_id(e.get("id")))
            if start:
                title += f" ({start:%d/%m/%Y})"
            result.append(RemoteForm(ref=as_id(e.get("id")), title=title, url=str(e.get("shop") or ""),
                                     state=gettext("published") if flag(e.get("online")) else gettext("not published"),
                                     form_type=gettext("sessions") if flag(e.get("multiple")) else gettext("single date")))
        return result

    def parse_form_url(self, url: str) -> Optional[str]:
        """``https://www.billetweb.fr/shop.php?event=<slug>`` or ``https://www.billetweb.fr/<slug>`` -> the event id."""
        parts = urlsplit(url or "")
        if not parts.netloc.endswith("billetweb.fr"):
            return None
        slug = (parse_qs(parts.query).get("event") or [""])[0] or parts.path.strip("/").split("/")[-1]
        for e in self._event_list():
            if slug and (str(e.get("ext_id")) == slug or as_id(e.get("id")) == slug):
                return as_id(e.get("id"))
        return None

    def _event(self, ref):
        for e in self._event_list():
            if as_id(e.get("id")) == as_id(ref):
                return e
        # the key does not list it: restricted to other events, or the event was deleted
        raise ServiceConfigurationError(SERVICE, "events", detail=gettext(
            "The API key does not give access to this event (deleted, or the key is restricted to other events)."))

    # -- catalogue ---------------------------------------------------------------------------------

    def get_catalog(self, form_ref: str) -> RemoteCatalog:
        self.form_ref = as_id(form_ref)
        e = self._event(form_ref)
        event_tax = euros(e.get("tax_rate") if e.get("tax_rate") not in (None, "") else e.get("tax"))
        products = []
        for t in self.client.tickets(form_ref):
            category, name = str(t.get("category") or ""), str(t.get("name") or "")
            label = f"{category} > {name}" if category and name else (name or str(t.get("full_name") or as_id(t.get("id"))))
            tax = t.get("tax")
            products.append(RemoteProduct(remote_id=as_id(t.get("id")), name=label[:190], description=str(t.get("description") or ""),
                                          price=euros(t.get("price")), tax_rate=euros(tax) if tax not in (None, "") else event_tax))
        dates = []
        if flag(e.get("multiple")):
            for d in self.client.dates(form_ref):
                start = local_date(d.get("start"))
                if start:
                    dates.append(RemoteDate(remote_id=as_id(d.get("id")), date_from=start, date_to=local_date(d.get("end")),
                                            name=str(d.get("name") or "")))
        elif local_date(e.get("start")):
            dates.append(RemoteDate(remote_id="event", date_from=local_date(e.get("start")), date_to=local_date(e.get("end"))))
        form = RemoteForm(ref=as_id(form_ref), title=str(e.get("name") or ""), url=str(e.get("shop") or ""))
        return RemoteCatalog(form=form, products=products, questions=[], dates=dates)

    # -- orders ------------------------------------------------------------------------------------

    def changed_orders(self, form_ref: str, since=None, cursor: Optional[str] = None) -> Iterator[OrderPage]:
        """
        Billetweb answers with every ticket of the event in one array (no paging). With ``since``, one call with
        ``last_update`` says which orders changed; if any did, the event is read once more in full so that those orders
        come complete (a partial order would look like deleted tickets). Orders are ordered by id and committed in pages:
        the cursor is the last order id of a committed page, and a resumed read skips up to it.
        """
        if since is not None:
            changed = {as_id(r.get("order_id")) for r in self.client.attendees(form_ref, last_update=since.timestamp())}
            if not changed:
                return
        else:
            changed = None
        orders = self._group(self.client.attendees(form_ref), form_ref)
        if changed is not None:
            orders = [o for o in orders if o.remote_id in changed]
        if cursor:
            orders = [o for o in orders if _order_key(o.remote_id) > _order_key(cursor)]
        for i in range(0, len(orders), PAGE_SIZE):
            page = orders[i:i + PAGE_SIZE]
            yield OrderPage(orders=page, cursor=page[-1].remote_id)

    def fetch_order(self, remote_id: str) -> RemoteOrder:
        if not self.form_ref:
            raise ServiceNotFound(SERVICE, "attendees")
        for o in self._group(self.client.attendees(self.form_ref), self.form_ref):
            if o.remote_id == as_id(remote_id):
                return o
        raise ServiceNotFound(SERVICE, "attendees")

    def _group(self, rows, form_ref) -> List[RemoteOrder]:
        by_order = {}
        for r in rows:
            if not isinstance(r, dict) or not as_id(r.get("order_id")):
                continue
            by_order.setdefault(as_id(r.get("order_id")), []).append(r)
        return [self.map_order(oid, by_order[oid], form_ref) for oid in sorted(by_order, key=_order_key)]

    def map_order(self, order_id, rows, form_ref) -> RemoteOrder:
        rows = sorted(rows, key=lambda r: _order_key(as_id(r.get("id"))))
        first = rows[0]
        paid = flag(first.get("order_paid"))
        positions = []
        for r in rows:
            disabled = flag(r.get("disabled"))
            state = CANCELED if disabled else (VALID if paid else PENDING)
            session = as_id(r.get("order_session"))
            positions.append(RemotePosition(
                remote_id=as_id(r.get("id")), product_id=as_id(r.get("ticket_id")) or None, product_label=str(r.get("ticket") or ""),
                price=euros(r.get("price")), state=state, attendee_first_name=str(r.get("firstname") or ""),
                attendee_last_name=str(r.get("name") or ""), attendee_email=str(r.get("email") or ""),
                answers=_label_answers(r.get("custom")),
                secret=str(r.get("barcode") or ""), promo_code=str(r.get("reduction_code") or ""),
                date_id=session if session and session != "0" else None, checked_in=_scanned(r),
            ))
        # a ticket included in a pass points to the pass (`pass`): both keep their own barcode, so both stay tickets
        live = sum((p.price for p in positions if p.state != CANCELED), Decimal("0.00"))
        all_prices = sum((p.price for p in positions), Decimal("0.00"))
        payments = []
        ptype = str(first.get("order_payment_type") or "")
        pdate = local_date(first.get("order_payment_date")) or local_date(first.get("order_date"))
        if paid and live > 0:
            payments.append(RemotePayment(remote_id=f"bw-{order_id}", amount=live, date=pdate, state=PAID, means=ptype))
        elif not paid and all_prices > 0 and all(p.state == CANCELED for p in positions) and local_date(first.get("order_payment_date")):
            # refunded: Billetweb says "not paid" and every ticket disabled, after a payment date
            payments.append(RemotePayment(remote_id=f"bw-{order_id}", amount=all_prices, date=pdate, state=REFUNDED, means=ptype,
                                          refunds=[RemoteRefund(remote_id=f"bw-{order_id}-refund", amount=all_prices, date=None, done=True)]))
        email = str(first.get("order_email") or "") or next((str(r.get("email")) for r in rows if r.get("email")), "")
        updated = [local_date(r.get("last_update")) for r in rows]
        updated = [u for u in updated if u]
        return RemoteOrder(
            remote_id=as_id(order_id), date=local_date(first.get("order_date")), updated=max(updated) if updated else None, email=email,
            first_name=str(first.get("order_firstname") or ""), last_name=str(first.get("order_name") or ""),
            total=euros(first.get("order_price")), positions=positions, payments=payments, form_ref=as_id(form_ref),
            versions=sorted({str(r.get("last_update") or "") for r in rows}),
            answers=_order_answers(rows),
        )


def _label_answers(values) -> List[RemoteAnswer]:
    """Billetweb's custom fields: ``{label: value}`` (empty values left out), questions created from their labels. A list of
    ``{label, value}`` is read too (``custom_order``'s shape is not documented)."""
    if isinstance(values, list):
        values = {a.get("label"): a.get("value") for a in values if isinstance(a, dict) and a.get("label") is not None}
    if not isinstance(values, dict):
        return []
    return [RemoteAnswer(question_id=f"label:{k}", label=str(k), answer=str(v), create_question=True)
            for k, v in values.items() if str(k).strip() and v is not None and str(v).strip()]


def _order_answers(rows) -> List[RemoteAnswer]:
    """``custom_order`` (the buyer's form, once per order, repeated on each ticket row): the first row that has it.
    Its shape is not documented; read like ``custom`` (label -> value)."""
    for r in rows:
        if isinstance(r.get("custom_order"), (dict, list)) and r["custom_order"]:
            return _label_answers(r["custom_order"])
    return []


def _scanned(row):
    """``used`` 1 (scanned) or 2 (scanned, then left) with a real ``used_date``: when the ticket entered; else None."""
    if as_id(row.get("used")) not in ("1", "2"):
        return None
    return local_date(row.get("used_date"))


def _order_key(value):
    value = as_id(value)
    return (0, int(value), "") if value.isdigit() else (1, 0, value)
