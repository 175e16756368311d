"""
Weezevent API (api.weezevent.com, v1 routes): :class:`WeezeventClient` only speaks HTTP, :class:`WeezeventProvider` maps
Weezevent's events, dates, rates ("tickets") and participants to the neutral models of :mod:`.`.

Research notes: ``shared/docs/weezevent-api.md``. Things that matter here: a Weezevent "ticket" is a rate and a
"participant" an issued ticket; orders are rebuilt by grouping participants on ``id_transaction``; rates sit in nested
categories of any depth; ids arrive as strings or integers; the access token is obtained once with API key + login +
password and kept (five refused logins ban the account for 30 minutes, so a refused login is never retried until the
organiser changes the credentials); more than 600 requests a minute bans the key for 30 minutes (HTTP 429).
"""
from datetime import timedelta
from decimal import Decimal
from typing import Iterator, List, Optional

from django.utils.translation import gettext, gettext_lazy as _

from pretix_integrations_core.errors import ServiceBadResponse, ServiceConfigurationError, ServiceNotFound, ServiceRateLimited
from pretix_integrations_core.httpclient import HttpClient, json_body, register_sensitive_path

from . import (
    CANCELED, PAID, PENDING, REFUNDED, VALID, OrderPage, Provider, RemoteAnswer, RemoteCatalog, RemoteDate, RemoteForm, RemoteOrder, RemotePayment,
    RemotePosition, RemoteProduct, RemoteRefund,
)
from .common import PARIS, AccountBudget, as_id, euros, flag, local_date

SERVICE = "Weezevent"
PRODUCTION_URL = "https://api.weezevent.com"
#: far below the 600 a minute that gets a key banned
BUDGET_LIMIT, BUDGET_WINDOW = 300, 60.0
MAX = 500  # participants per API page
PAGE_SIZE = 200  # orders per committed page
OVERLAP = timedelta(minutes=10)
# the API key and the access token travel in the query string: urllib3's debug lines of these paths are redacted
for _prefix in ("/events", "/dates", "/tickets", "/participant"):
    register_sensitive_path(_prefix)


class WeezeventLoginRefused(ServiceConfigurationError):
    """Weezevent refused the API key, login or password: not retried until the organiser changes them."""
    kind = "login_refused"


class WeezeventBanned(ServiceRateLimited):
    kind = "banned"


def login_refused_error(operation="login"):
    return WeezeventLoginRefused(SERVICE, operation, detail=gettext(
        "Weezevent refused the API key, the login or the password. To protect the account (five refused logins block it for "
        "30 minutes), no new attempt is made until you save the credentials again in the Weezevent connection settings."))


class WeezeventClient:
    """HTTP only. ``tokens`` keeps the access token and the login state (see :class:`~..config.WeezeventTokenStore`)."""

    def __init__(self, base_url, api_key, username, password, *, scope, tokens, budget=None):
        self.http = HttpClient(SERVICE, (base_url or PRODUCTION_URL).rstrip("/"), scope=scope, read_timeout=60.0, budget=120.0,
                               max_attempts=2, backoff=1.0)
        self.api_key, self.username, self.password = api_key, username, password
        self.tokens = tokens
        self.budget = budget or AccountBudget(SERVICE, api_key[-12:] + ":" + username, limit=BUDGET_LIMIT, window=BUDGET_WINDOW)
        self.calls = 0
        self.login_calls = 0

    def login(self):
        """One login attempt, never repeated on refusal (the refusal is stored: the next sync does not try again)."""
        if self.tokens.refused():
            raise login_refused_error()
        data = {"username": self.username, "password": self.password, "api_key": self.api_key}

        def send():
            self.login_calls += 1
            # a POST: the core client never repeats it once sent; every status is read here
            return self.http.request("POST", "/auth/access_token", operation="login", data=data, ok_statuses=range(300, 600))

        resp = self.budget.call(send, "login")
        if resp.status_code == 429:
            self.tokens.set_refused(banned=True)
            raise WeezeventBanned(SERVICE, "login", status=429, retry_after=1800, detail=gettext(
                "Weezevent blocked logins for this account (too many attempts; five refused logins block it for 30 minutes). "
                "No new attempt is made until you save the credentials again."))
        if resp.status_code in (400, 401, 403):
            self.tokens.set_refused()
            raise login_refused_error()
        if resp.status_code >= 300:
            raise self.http._map_status(resp, "login")
        token = (json_body(resp, SERVICE, "login") or {}).get("accessToken")
        if not token:
            raise ServiceBadResponse(SERVICE, "login", status=resp.status_code)
        self.tokens.set_token(token)
        return token

    def get(self, path, *, operation, params=None):
        token, fresh = self.tokens.token(), False
        if not token:
            token, fresh = self.login(), True
        for attempt in (1, 2):
            query = [("api_key", self.api_key), ("access_token", token)] + list(params or [])

            def send():
                self.calls += 1
                return self.http.request("GET", path, operation=operation, params=query, retry_safe=False, ok_statuses=(401, 403, 429))

            resp = self.budget.call(send, operation)
            if resp.status_code in (401, 403):
                if fresh or attempt == 2:
                    raise ServiceConfigurationError(SERVICE, operation, status=resp.status_code, detail=gettext(
                        "Weezevent refused the access token of this account for this request (check that the login has access to the event)."))
                # the stored token expired or was revoked: one new login, once
                self.tokens.set_token("")
                token, fresh = self.login(), True
                continue
            if resp.status_code == 429:
                raise WeezeventBanned(SERVICE, operation, status=429, retry_after=1800, detail=gettext(
                    "Weezevent banned this API key for a while (more than 600 requests a minute, perhaps by another tool using the "
                    "same key). The sync goes on by itself later."))
            data = json_body(resp, SERVICE, operation)
            if not isinstance(data, dict):
                raise ServiceBadResponse(SERVICE, operation, status=resp.status_code)
            return data

    def events(self):
        flags = [("include_closed", "true"), ("include_not_published", "true"), ("include_without_sales", "true")]
        return self.get("/events", operation="events", params=flags)

    def dates(self, event_id):
        return self.get("/dates", operation="dates", params=[("id_event[]", str(event_id)), ("display_passed", "true")])

    def tickets(self, event_id):
        return self.get("/tickets", operation="tickets", params=[("id_event[]", str(event_id))])

    def participants(self, event_id, *, page, last_update=None):
        params = [("id_event[]", str(event_id)), ("full", "1"), ("include_deleted", "1"), ("include_unpaid", "1"),
                  ("max", str(MAX)), ("page", str(page))]
        if last_update:
            params.append(("last_update", last_update))
        try:
            return self.get("/participant/list", operation="participants", params=params)
        except ServiceNotFound:  # the older route name
            return self.get("/participants", operation="participants", params=params)


class WeezeventProvider(Provider):
    identifier = "weezevent"
    verbose_name = _("Weezevent")
    complete_listing = True
    orders_without_email = True
    full_read_every = timedelta(hours=24)

    def __init__(self, *, base_url, api_key, username, password, scope, tokens, budget=None):
        self.client = WeezeventClient(base_url, api_key, username, password, scope=scope, tokens=tokens, budget=budget)
        self._events = None
        self._rates = None
        self.form_ref = None

    @property
    def calls(self):
        return self.client.calls + self.client.login_calls

    def _event_list(self):
        if self._events is None:
            self._events = [e for e in (self.client.events().get("events") or []) if isinstance(e, dict)]
        return self._events

    def test_connection(self) -> dict:
        return {"events": len(self._event_list())}

    def list_forms(self) -> List[RemoteForm]:
        result = []
        for e in self._event_list():
            start = local_date((e.get("date") or {}).get("start"))
            title = str(e.get("name") or as_id(e.get("id")))
            if start:
                title += f" ({start:%d/%m/%Y})"
            result.append(RemoteForm(ref=as_id(e.get("id")), title=title,
                                     form_type=gettext("several dates") if flag(e.get("multiple_dates")) else gettext("single date")))
        return result

    def parse_form_url(self, url: str) -> Optional[str]:
        return None  # Weezevent's public addresses do not carry the event id

    def _event(self, ref):
        for e in self._event_list():
            if as_id(e.get("id")) == as_id(ref):
                return e
        raise ServiceConfigurationError(SERVICE, "events", detail=gettext(
            "This Weezevent login does not give access to this event (deleted, or another organiser's)."))

    # -- catalogue ---------------------------------------------------------------------------------

    def _flatten(self, node, path):
        """Rates at this level and in nested categories of any depth; the category path goes in the product name."""
        for t in node.get("tickets") or []:
            if isinstance(t, dict):
                name = " > ".join(path + [str(t.get("name") or as_id(t.get("id")))])
                yield RemoteProduct(remote_id=as_id(t.get("id")), name=name[:190], price=euros(t.get("price")))
        for c in node.get("categories") or []:
            if isinstance(c, dict):
                yield from self._flatten(c, path + [str(c.get("name") or "")])

    def rates(self, form_ref):
        if self._rates is None:
            products = []
            for ev in self.client.tickets(form_ref).get("events") or []:
                if isinstance(ev, dict) and as_id(ev.get("id")) in ("", as_id(form_ref)):
                    products += list(self._flatten(ev, []))
            self._rates = {p.remote_id: p for p in products}
        return self._rates

    def get_catalog(self, form_ref: str) -> RemoteCatalog:
        self.form_ref = as_id(form_ref)
        e = self._event(form_ref)
        products = list(self.rates(form_ref).values())
        dates = []
        if flag(e.get("multiple_dates")):
            for d in self.client.dates(form_ref).get("dates") or []:
                start = local_date(d.get("date")) if isinstance(d, dict) else None
                if start and as_id(d.get("id_event")) in ("", as_id(form_ref)):
                    dates.append(RemoteDate(remote_id=as_id(d.get("id")), date_from=start))
        else:
            start = local_date((e.get("date") or {}).get("start"))
            if start:
                dates.append(RemoteDate(remote_id="event", date_from=start, date_to=local_date((e.get("date") or {}).get("end"))))
        return RemoteCatalog(form=RemoteForm(ref=as_id(form_ref), title=str(e.get("name") or "")), products=products, questions=[],
                             dates=dates)

    # -- orders ------------------------------------------------------------------------------------

    def _read_all(self, form_ref, last_update=None):
        rows, page = {}, 1
        while True:
            batch = [p for p in (self.client.participants(form_ref, page=page, last_update=last_update).get("participants") or [])
                     if isinstance(p, dict)]
            for p in batch:
                rows[as_id(p.get("id_participant"))] = p  # pages may overlap: dedupe
            if len(batch) < MAX:
                return list(rows.values())
            page += 1

    def changed_orders(self, form_ref: str, since=None, cursor: Optional[str] = None) -> Iterator[OrderPage]:
        """As Billetweb: with ``since``, ``last_update`` says which transactions changed, then they are read complete."""
        if since is not None:
            stamp = (since - OVERLAP).astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")
            changed = {as_id(p.get("id_transaction")) for p in self._read_all(form_ref, last_update=stamp)}
            if not changed:
                return
        else:
            changed = None
        orders = self._group(self._read_all(form_ref), form_ref)
        if changed is not None:
            orders = [o for o in orders if o.remote_id in changed]
        if cursor:
            orders = [o for o in orders if _key(o.remote_id) > _key(cursor)]
        for i in range(0, len(orders), PAGE_SIZE):
            page = orders[i:i + PAGE_SIZE]
            yield OrderPage(orders=page, cursor=page[-1].remote_id)

    def fetch_order(self, remote_id: str) -> RemoteOrder:
        for o in self._group(self._read_all(self.form_ref), self.form_ref) if self.form_ref else []:
            if o.remote_id == as_id(remote_id):
                return o
        raise ServiceNotFound(SERVICE, "participants")

    def _group(self, rows, form_ref):
        by_tx = {}
        for p in rows:
            tx = as_id(p.get("id_transaction")) or ("p" + as_id(p.get("id_participant")))
            by_tx.setdefault(tx, []).append(p)
        rates = self.rates(form_ref)
        return [self.map_order(tx, by_tx[tx], form_ref, rates) for tx in sorted(by_tx, key=_key)]

    def map_order(self, tx, rows, form_ref, rates) -> RemoteOrder:
        rows = sorted(rows, key=lambda p: _key(as_id(p.get("id_participant"))))
        positions = []
        paid_any = False
        for p in rows:
            owner = p.get("owner") if isinstance(p.get("owner"), dict) else {}
            rate = rates.get(as_id(p.get("id_ticket")))
            paid = flag(p.get("paid"))
            paid_any |= paid
            cancelled = flag(p.get("deleted")) or _refunded(p.get("refund"))
            state = CANCELED if cancelled else (VALID if paid else PENDING)
            date_id = as_id(p.get("id_date"))
            positions.append(RemotePosition(
                remote_id=as_id(p.get("id_participant")), product_id=as_id(p.get("id_ticket")) or None,
                product_label=rate.name if rate else "", price=rate.price if rate else Decimal("0.00"), state=state,
                attendee_first_name=str(owner.get("first_name") or ""), attendee_last_name=str(owner.get("last_name") or ""),
                attendee_email=str(owner.get("email") or ""),
                answers=_label_answers(p.get("answers")),
                secret=str(p.get("barcode") or ""), promo_code=str(p.get("promo_code") or ""),
                date_id=date_id if date_id and date_id != "0" else None, checked_in=_scanned(p),
            ))
        first = rows[0]
        buyer = first.get("buyer") if isinstance(first.get("buyer"), dict) else {}
        owner = first.get("owner") if isinstance(first.get("owner"), dict) else {}
        owners = [p["owner"] for p in rows if isinstance(p.get("owner"), dict)]
        email = str(buyer.get("email_acheteur") or "") or next((str(o["email"]) for o in owners if o.get("email")), "")
        live = sum((p.price for p in positions if p.state == VALID), Decimal("0.00"))
        all_prices = sum((p.price for p in positions), Decimal("0.00"))
        created = [d for d in (local_date(p.get("create_date")) for p in rows) if d]
        payments = []
        if live > 0:
            payments.append(RemotePayment(remote_id=f"wz-{tx}", amount=live, date=min(created) if created else None, state=PAID,
                                          means=str(first.get("origin") or "")))
        elif paid_any and all_prices > 0 and all(_refunded(p.get("refund")) for p in rows):
            payments.append(RemotePayment(remote_id=f"wz-{tx}", amount=all_prices, date=min(created) if created else None, state=REFUNDED,
                                          refunds=[RemoteRefund(remote_id=f"wz-{tx}-refund", amount=all_prices, date=None, done=True)]))
        return RemoteOrder(
            remote_id=tx, date=min(created) if created else None, updated=None, email=email,
            first_name=str(buyer.get("acheteur_first_name") or owner.get("first_name") or ""),
            last_name=str(buyer.get("acheteur_last_name") or owner.get("last_name") or ""),
            total=all_prices, positions=positions, payments=payments, form_ref=as_id(form_ref),
            answers=_label_answers(buyer.get("answers")),
        )


def _label_answers(values) -> List[RemoteAnswer]:
    """Weezevent's form answers: ``[{label, value}]`` (empty values left out), questions created from their labels."""
    return [RemoteAnswer(question_id=f"label:{a.get('label')}", label=str(a.get("label")), answer=str(a.get("value")),
                         create_question=True)
            for a in (values if isinstance(values, list) else [])
            if isinstance(a, dict) and str(a.get("label") or "").strip() and a.get("value") is not None and str(a.get("value")).strip()]


def _scanned(participant):
    """``control_status`` (the last scan): a status other than ``"0"`` with a real ``scan_date``; else None."""
    status = participant.get("control_status")
    if not isinstance(status, dict) or as_id(status.get("status")) in ("", "0"):
        return None
    return local_date(status.get("scan_date"))


def _refunded(value):
    if isinstance(value, dict):
        return str(value.get("status") or "").lower() in ("refunded", "1", "true")
    return flag(value)


def _key(value):
    value = as_id(value)
    return (0, int(value), "") if value.isdigit() else (1, 0, value)
