"""
HelloAsso API v5: :class:`HelloAssoClient` only speaks HTTP (paths, query strings, JSON), and
:class:`HelloAssoProvider` maps HelloAsso's forms and orders to the neutral models of :mod:`.`.

Research notes: ``shared/docs/helloasso-api.md``. Things that matter here: null fields are left out (``.get``
everywhere), amounts are integer cents, ``continuationToken`` paging ends on an empty page that still carries a
token, refunds are only visible on payments, tips (``amountTip``) are never the organiser's money, countries are
ISO alpha-3.
"""
import re
from decimal import Decimal
from typing import Iterator, List, Optional
from urllib.parse import unquote, urlsplit

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.httpclient import HttpClient, json_body
from pretix_integrations_core.oauth import OAuth2ClientCredentials

from . import (
    CANCELED, CONTESTED, FAILED, PAID, PAYMENT_PENDING, PENDING, REFUNDED, VALID, OrderChange, OrderPage, Provider, RemoteAnswer, RemoteCatalog, RemoteForm,
    RemoteOrder, RemotePayment, RemotePosition, RemoteProduct, RemoteQuestion, RemoteRefund,
)

SERVICE = "HelloAsso"
PRODUCTION_URL = "https://api.helloasso.com"
SANDBOX_URL = "https://api.helloasso-sandbox.com"
PAGE_SIZE = 100
FORM_TYPES = ("CrowdFunding", "Membership", "Event", "Donation", "PaymentForm", "Checkout", "Shop")

#: the French words of public form URLs (https://www.helloasso.com/associations/<org>/<word>/<form>) -> API form type
URL_TYPE_WORDS = {
    "evenements": "Event", "evenement": "Event",
    "adhesions": "Membership", "adhesion": "Membership",
    "collectes": "CrowdFunding", "collecte": "CrowdFunding",
    "formulaires": "Donation", "formulaire": "Donation", "dons": "Donation", "don": "Donation",
    "paiements": "PaymentForm", "paiement": "PaymentForm",
    "boutiques": "Shop", "boutique": "Shop",
}

VALID_ITEM_STATES = {"Processed", "Registered"}
CANCELED_ITEM_STATES = {"Canceled", "Refunded", "Refused", "Abandoned", "Deleted"}
PAID_PAYMENT_STATES = {"Authorized", "Registered", "AuthorizedPreprod"}
REFUNDED_PAYMENT_STATES = {"Refunded", "Refunding"}
FAILED_PAYMENT_STATES = {"Refused", "Canceled", "Error", "Abandoned", "Deleted", "Inconsistent"}
DONATION_TIER_TYPES = {"Donation", "MonthlyDonation", "OfflineDonation"}

FIELD_TYPES = {
    "TextInput": "S", "FreeText": "T", "ChoiceList": "C", "YesNo": "B", "Date": "D", "Phone": "TEL", "Number": "N",
    "Zipcode": "S", "File": "S",  # a file answer is a link: kept as text
}


def cents(value) -> Decimal:
    try:
        return (Decimal(int(value or 0)) / 100).quantize(Decimal("0.01"))
    except (TypeError, ValueError):
        return Decimal("0.00")


def parse_date(value):
    """HelloAsso dates carry up to 7 fractional digits; Django's parser accepts them."""
    if not value:
        return None
    try:
        return parse_datetime(re.sub(r"(\.\d{6})\d+", r"\1", value))
    except ValueError:
        return None


def alpha2(code: str) -> str:
    """ISO alpha-3 (HelloAsso) -> alpha-2 (pretix) with a real table, never by cutting letters (AUT is Austria, not AU)."""
    from django_countries import countries

    code = (code or "").strip().upper()
    if len(code) == 2:
        return code
    return countries.alpha2(code) or "" if code else ""


class HelloAssoClient:
    """HTTP only: every method is one API route, returning parsed JSON."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *, scope: str):
        base = (base_url or PRODUCTION_URL).rstrip("/")
        # 429 and 5xx are retried with back-off (Retry-After honoured) by the core client
        self.http = HttpClient(SERVICE, base, scope=scope, read_timeout=20.0, budget=45.0, max_attempts=4, backoff=0.5)
        self.oauth = OAuth2ClientCredentials("helloasso", client_id=client_id, client_secret=client_secret, http=self.http)
        self.calls = 0

    def get(self, path, *, operation, params=None):
        self.calls += 1
        resp = self.oauth.request("GET", "/v5" + path, operation=operation, params=params)
        return json_body(resp, SERVICE, operation)

    @property
    def api_calls(self):
        return self.calls + self.oauth.token_calls

    def organization(self, org):
        return self.get(f"/organizations/{org}", operation="organization")

    def forms(self, org, page_index=1):
        return self.get(f"/organizations/{org}/forms", operation="forms", params={"pageSize": PAGE_SIZE, "pageIndex": page_index})

    def form_public(self, org, form_type, form_slug):
        return self.get(f"/organizations/{org}/forms/{form_type}/{form_slug}/public", operation="form")

    def form_orders(self, org, form_type, form_slug, *, continuation_token=None, since=None):
        params = {"pageSize": PAGE_SIZE, "withDetails": "true", "sortOrder": "Asc"}
        if continuation_token:
            params["continuationToken"] = continuation_token
        if since:
            params["from"] = since.isoformat()
        return self.get(f"/organizations/{org}/forms/{form_type}/{form_slug}/orders", operation="orders", params=params)

    def form_payments_by_update(self, org, form_type, form_slug, *, continuation_token=None):
        params = {"pageSize": PAGE_SIZE, "sortOrder": "Desc", "sortField": "UpdateDate"}
        if continuation_token:
            params["continuationToken"] = continuation_token
        return self.get(f"/organizations/{org}/forms/{form_type}/{form_slug}/payments", operation="payments", params=params)

    def form_items_by_update(self, org, form_type, form_slug, *, continuation_token=None):
        params = {"pageSize": PAGE_SIZE, "sortOrder": "Desc", "sortField": "UpdateDate"}
        if continuation_token:
            params["continuationToken"] = continuation_token
        return self.get(f"/organizations/{org}/forms/{form_type}/{form_slug}/items", operation="items", params=params)

    def order(self, order_id):
        return self.get(f"/orders/{int(order_id)}", operation="order")


class HelloAssoProvider(Provider):
    identifier = "helloasso"
    verbose_name = _("HelloAsso")

    def __init__(self, *, base_url, client_id, client_secret, organization_slug, scope):
        self.client = HelloAssoClient(base_url, client_id, client_secret, scope=scope)
        self.org = organization_slug

    @property
    def calls(self):
        return self.client.api_calls

    # -- connection and forms ----------------------------------------------------------------------

    def test_connection(self) -> dict:
        return self.client.organization(self.org)

    def list_forms(self) -> List[RemoteForm]:
        result, index = [], 1
        while index <= 20:
            page = self.client.forms(self.org, index)
            data = page.get("data") or []
            result += [self._form(f) for f in data if f.get("formType") and f.get("formSlug")]
            if len(data) < PAGE_SIZE:
                break
            index += 1
        return result

    @staticmethod
    def _form(f) -> RemoteForm:
        return RemoteForm(ref=f"{f['formType']}/{f['formSlug']}", title=re.sub(r"<[^>]+>", "", f.get("title") or f["formSlug"]).strip(),
                          url=f.get("url") or "", state=f.get("state") or "", form_type=f["formType"])

    def parse_form_url(self, url: str) -> Optional[str]:
        parts = urlsplit((url or "").strip())
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if len(segments) < 4 or segments[0] != "associations" or "helloasso" not in (parts.hostname or ""):
            return None
        org, word, slug = segments[1], segments[2].lower(), segments[3]
        form_type = URL_TYPE_WORDS.get(word) or {t.lower(): t for t in FORM_TYPES}.get(word)
        if not form_type or org.lower() != (self.org or "").lower():
            return None
        return f"{form_type}/{slug}"

    @staticmethod
    def split_ref(form_ref):
        form_type, _, slug = (form_ref or "").partition("/")
        return form_type, slug

    # -- catalogue ---------------------------------------------------------------------------------

    def get_catalog(self, form_ref: str) -> RemoteCatalog:
        form = self.client.form_public(self.org, *self.split_ref(form_ref))
        products, addons, questions = [], {}, {}
        for tier in form.get("tiers") or []:
            qids = []
            for cf in tier.get("customFields") or []:
                questions.setdefault(str(cf["id"]), self._question(cf))
                qids.append(str(cf["id"]))
            min_amount = tier.get("minAmount")
            products.append(RemoteProduct(
                remote_id=str(tier["id"]), name=tier.get("label") or str(tier["id"]), description=tier.get("description") or "",
                price=cents(tier.get("price")), tax_rate=(Decimal(str(tier.get("vatRate") or 0)) * 100).quantize(Decimal("0.01")),
                free_price=min_amount is not None, min_price=cents(min_amount) if min_amount is not None else None,
                max_per_order=tier.get("maxPerUser"), is_donation=tier.get("tierType") in DONATION_TIER_TYPES, questions=qids,
            ))
            for opt in tier.get("extraOptions") or []:
                oid = "option-" + str(opt["id"])
                if oid not in addons:
                    addons[oid] = RemoteProduct(
                        remote_id=oid, name=opt.get("label") or oid, description=opt.get("description") or "",
                        price=cents(opt.get("price")), tax_rate=(Decimal(str(opt.get("vatRate") or 0)) * 100).quantize(Decimal("0.01")),
                        is_addon=True,
                    )
                addons[oid].parents.append(str(tier["id"]))
                for cf in opt.get("customFields") or []:
                    questions.setdefault(str(cf["id"]), self._question(cf))
                    addons[oid].questions.append(str(cf["id"]))
        return RemoteCatalog(form=self._form(form), products=products + list(addons.values()), questions=list(questions.values()))

    @staticmethod
    def _question(cf) -> RemoteQuestion:
        return RemoteQuestion(remote_id=str(cf["id"]), label=cf.get("label") or str(cf["id"]), type=FIELD_TYPES.get(cf.get("type"), "S"),
                              required=bool(cf.get("isRequired")), options=[str(v) for v in cf.get("values") or []])

    # -- orders ------------------------------------------------------------------------------------

    def changed_orders(self, form_ref, since=None, cursor=None) -> Iterator[OrderPage]:
        """
        Orders of the form, oldest first (``sortOrder=Asc``, 100 per page, with details), resuming after ``cursor``.

        ``since`` (already including the caller's safety overlap) limits the scan to orders dated from then on.
        The loop stops on an empty page **or** a page without a token (HelloAsso keeps a token on the last, empty page).
        """
        form_type, slug = self.split_ref(form_ref)
        token = cursor
        for _page in range(10000):
            page = self.client.form_orders(self.org, form_type, slug, continuation_token=token, since=since)
            data = page.get("data") or []
            next_token = (page.get("pagination") or {}).get("continuationToken")
            if not data:
                return
            yield OrderPage(orders=[self.map_order(o) for o in data], cursor=next_token or token)
            # an empty page is the documented end; a short page is the last one too (saves a call per sync)
            if not next_token or next_token == token or len(data) < PAGE_SIZE:
                return
            token = next_token

    def recent_changes(self, form_ref, not_before, pending) -> List[OrderChange]:
        """
        What changed, newest first: the form's items by update date (new orders, late orders, cancelled tickets, free
        orders included) then its payments by update date (payments, installments, refunds, chargebacks of older orders).
        Each listing stops at ``not_before``, or early on a page whose changes were all applied already, so a sync with
        nothing new reads one page of each (see :meth:`Provider.recent_changes`).
        """
        form_type, slug = self.split_ref(form_ref)
        result = []
        for listing, change in ((self.client.form_items_by_update, self._item_change), (self.client.form_payments_by_update, self._payment_change)):
            token = None
            for _page in range(1000):
                page = listing(self.org, form_type, slug, continuation_token=token)
                data = page.get("data") or []
                changes = [change(row) for row in data]
                recent = [c for c in changes if not (c.updated and not_before and c.updated < not_before)]
                todo = pending(recent) if recent else []
                result += todo
                token = (page.get("pagination") or {}).get("continuationToken")
                # older than the window, nothing left to apply on this page, a short page (the last one) or no token: done
                if len(recent) < len(changes) or not todo or not token or len(data) < PAGE_SIZE:
                    break
        return result

    @staticmethod
    def _item_change(row) -> OrderChange:
        order = row.get("order") or {}
        updated = (order.get("meta") or {}).get("updatedAt") or ""
        return OrderChange(order_id=str(order.get("id") or ""), order_date=parse_date(order.get("date")), updated=parse_date(updated),
                           version=f"o@{updated}")

    @staticmethod
    def _payment_change(row) -> OrderChange:
        order = row.get("order") or {}
        updated = (row.get("meta") or {}).get("updatedAt") or ""
        return OrderChange(order_id=str(order.get("id") or ""), order_date=parse_date(order.get("date")),
                           updated=parse_date(updated) or parse_date(row.get("date")), version=f"p{row.get('id')}@{updated}")

    def fetch_order(self, remote_id) -> RemoteOrder:
        return self.map_order(self.client.order(remote_id))

    def map_order(self, o) -> RemoteOrder:
        payer = o.get("payer") or {}
        payments = [self._payment(p) for p in o.get("payments") or []]
        bad = {p.remote_id for p in payments if p.state in (REFUNDED, FAILED)}
        positions = []
        for item in o.get("items") or []:
            state = item.get("state") or "Unknown"
            pay_ids = {str(s.get("id")) for s in item.get("payments") or []}
            if state in CANCELED_ITEM_STATES:
                pstate = CANCELED
            elif state in VALID_ITEM_STATES:
                pstate = CANCELED if pay_ids and pay_ids <= bad else VALID
            else:
                pstate = PENDING
            user = item.get("user") or {}
            discount = item.get("discount") or {}
            tier_type = item.get("type") or ""
            positions.append(RemotePosition(
                remote_id=str(item["id"]), product_id=str(item["tierId"]) if item.get("tierId") else None,
                product_label=item.get("name") or "", price=cents(item.get("amount")), state=pstate,
                attendee_first_name=user.get("firstName") or "", attendee_last_name=user.get("lastName") or "",
                answers=[RemoteAnswer(str(cf.get("id") or "") or None, cf.get("name") or "", str(cf.get("answer") or ""))
                         for cf in item.get("customFields") or [] if cf.get("answer") not in (None, "")],
                secret=self.ticket_code(item), is_donation=tier_type in DONATION_TIER_TYPES,
                promo_code=discount.get("code") or "", discount=cents(discount.get("amount")),
            ))
            for opt in item.get("options") or []:
                positions.append(RemotePosition(
                    remote_id=f"{item['id']}-option-{opt.get('optionId')}", product_id=f"option-{opt.get('optionId')}",
                    product_label=opt.get("name") or "", price=cents(opt.get("amount")), state=pstate, addon_to=str(item["id"]),
                    answers=[RemoteAnswer(str(cf.get("id") or "") or None, cf.get("name") or "", str(cf.get("answer") or ""))
                             for cf in opt.get("customFields") or [] if cf.get("answer") not in (None, "")],
                ))
        amount = o.get("amount") or {}
        return RemoteOrder(
            remote_id=str(o["id"]), date=parse_date(o.get("date")), updated=parse_date((o.get("meta") or {}).get("updatedAt")),
            email=payer.get("email") or "", first_name=payer.get("firstName") or "", last_name=payer.get("lastName") or "",
            company=payer.get("company") or "", street=payer.get("address") or "", zipcode=payer.get("zipCode") or "",
            city=payer.get("city") or "", country=alpha2(payer.get("country")), total=cents(amount.get("total")),
            positions=positions, payments=payments, form_ref=f"{o.get('formType', '')}/{o.get('formSlug', '')}",
            versions=[f"o@{(o.get('meta') or {}).get('updatedAt') or ''}"] + [f"p{p.get('id')}@{(p.get('meta') or {}).get('updatedAt') or ''}"
                                                                              for p in o.get("payments") or []],
        )

    @staticmethod
    def ticket_code(item) -> str:
        """The code printed on HelloAsso's ticket (base64 qrCode), used as the pretix secret so those tickets scan."""
        code = item.get("qrCode") or ""
        return code if re.fullmatch(r"[A-Za-z0-9+/=_-]{8,190}", code) else ""

    @staticmethod
    def _payment(p) -> RemotePayment:
        state = p.get("state") or "Unknown"
        if state in PAID_PAYMENT_STATES:
            nstate = PAID
        elif state in REFUNDED_PAYMENT_STATES:
            nstate = REFUNDED
        elif state == "Contested":
            nstate = CONTESTED
        elif state in FAILED_PAYMENT_STATES:
            nstate = FAILED
        else:
            nstate = PAYMENT_PENDING  # Pending, Waiting*, unknown values: not paid yet
        refunds = [RemoteRefund(str(r["id"]), cents(r.get("amount")), parse_date((r.get("meta") or {}).get("updatedAt")),
                                done=r.get("status") == "Processed")
                   for r in p.get("refundOperations") or [] if r.get("id")]
        # ``amount`` is the payment; ``amountTip`` (a tip to HelloAsso) is never the organiser's revenue
        return RemotePayment(remote_id=str(p["id"]), amount=cents(p.get("amount")), date=parse_date(p.get("date")), state=nstate,
                             means=p.get("paymentMeans") or "", installment=p.get("installmentNumber"), refunds=refunds,
                             shares={str(s.get("id")): cents(s.get("shareAmount")) for s in p.get("items") or []})
