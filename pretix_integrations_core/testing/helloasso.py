"""
Fake HelloAsso API v5 (association keys), after ``shared/docs/helloasso-api.md``. Its seeded data reproduces
the samples of ``shared/docs/helloasso-samples/`` field for field (§6): organization ``festival-des-lumieres``,
form ``Event/soiree-de-gala-2026`` with 3 tiers, and orders A 128450311 (paid), B 128450377 (refunded) and
C 128451002 (free, one item canceled).

- ``POST /oauth2/token`` (§1.2-1.5): form-encoded only; client credentials in the body or as HTTP Basic;
  ``client_credentials`` and ``refresh_token`` grants (a refresh token works once: rotation is assumed);
  ``{access_token, refresh_token, token_type: "bearer", expires_in}``; wrong client id or secret -> 400
  ``{"error": "unauthorized_client", "error_description": "Invalid client_id '<id>'"}``; unknown or used
  refresh token -> 400 ``invalid_grant``.
- Every ``/v5/`` route needs ``Authorization: Bearer <access token>``: 401 with an empty body otherwise (§1.5).
- ``GET /v5/organizations/{org}`` (§2.7, §3.4).
- ``GET /v5/organizations/{org}/forms/{formType}/{formSlug}/public`` (§2.2, §3.1). formType is matched
  case-insensitively and answered in its canonical spelling (§2.1).
- ``GET …/orders``, ``…/items`` and ``…/payments`` of a form (§2.3-2.5, §3.2-3.3). Query: ``from``/``to``
  (exclusive), ``userSearchKey``, ``sortOrder`` (default Desc), ``sortField``, ``pageSize`` (default 20, 400
  above 100), ``pageIndex`` (500 past the last page, §2.8), ``continuationToken``
  (``<yyyyMMddHHmmss>_<id>``, still present on the final empty page), ``withDetails`` (customFields only when
  true), and repeated-key filters ``states``, ``itemStates``, ``tierTypes``. Totals are always ``-1``.
- ``GET /v5/orders/{id}`` (§2.6) and ``GET /v5/payments/{id}?withFailedRefundOperation=`` (§2.5).
- Errors: ``{"errors": [{"code", "message"}]}`` (§5.2); 403 with an empty body for another organization's
  orders, items or payments (§5.1).

Test helpers: :meth:`add_order`, :meth:`refund_payment`, :meth:`cancel_item`, :meth:`expire_access_tokens`,
:meth:`order_notification` / :meth:`payment_notification` (§4.2 payloads), and :meth:`send_notification`,
which POSTs one to a URL, with ``x-ha-signature`` (§4.3, partner mode) when a signature key is given.
``add_order`` also builds promo codes and installment plans; ``FakeHelloAsso(demo=True)`` (the demo's simulator) adds
:meth:`seed_demo`'s rate paid in three installments and four more orders.
"""
import base64
import copy
import datetime
import functools
import itertools
import json
import re
import secrets
import threading
import time

from ..webhooks import sign
from .fakeserver import FakeServer, Response, deliver, json_response, route

DEMO_CLIENT_ID = "demo-helloasso-client-id"
DEMO_CLIENT_SECRET = "demo-helloasso-client-secret"
DEMO_SIGNATURE_KEY = "demo-helloasso-signature-key"
DEMO_ORGANIZATION = "festival-des-lumieres"
DEMO_FORM_TYPE = "Event"
DEMO_FORM_SLUG = "soiree-de-gala-2026"
#: the demo's extra rate, paid in three installments, and its promo code (:meth:`FakeHelloAsso.seed_demo`)
DEMO_INSTALLMENT_TIER = 14587204
DEMO_PROMO_CODE = "BENEVOLE2026"
FORM_TYPES = ("CrowdFunding", "Membership", "Event", "Donation", "PaymentForm", "Checkout", "Shop")
MAX_PAGE_SIZE = 100
FAILED_REFUND_STATES = ("Aborted", "Canceled", "Error", "Refused")

_CDN = "https://cdn.helloasso.com/img"
_WWW = "https://www.helloasso.com/associations/" + DEMO_ORGANIZATION
_FORM_URL = _WWW + "/evenements/" + DEMO_FORM_SLUG
_T0 = "2026-01-12T10:04:31.21+01:00"
_ORG = {"organizationName": "Festival des Lumières", "organizationSlug": DEMO_ORGANIZATION,
        "organizationType": "Association1901", "organizationIsUnderColucheLaw": False}
_SIZE = {"id": 5501231, "values": ["XS", "S", "M", "L", "XL"], "isRequired": True, "type": "ChoiceList", "label": "Taille de t-shirt"}
_CLUB = {"id": 5501232, "values": [], "isRequired": False, "type": "TextInput", "label": "Club ou association"}
_MEAL = {"customFields": [], "id": 3051871, "price": 1200, "vatRate": 0.0, "label": "Repas du soir",
         "description": "Buffet végétarien servi à partir de 19 h 30", "isRequired": False}


def _tier(tier_id, label, description, price, max_per_user, fields, options=(), updated=_T0, **extra):
    return {"customFields": list(fields), "extraOptions": list(options), "id": tier_id, "label": label, "description": description,
            "tierType": "Registration", "price": price, "vatRate": 0.0, "paymentFrequency": "Single", "maxPerUser": max_per_user,
            "meta": {"createdAt": _T0, "updatedAt": updated}, **extra, "isEligibleTaxReceipt": False, "isFavorite": False}


def demo_form():
    widget = _FORM_URL + "/widget"
    return {
        "organizationLogo": f"{_CDN}/logos/festival-des-lumieres-3f2a9c1be0d44c7a.png", "organizationName": _ORG["organizationName"],
        "tiers": [
            _tier(14587201, "Entrée plein tarif", "Accès à la soirée et au spectacle", 2500, 6, [_SIZE, _CLUB], [_MEAL],
                  updated="2026-03-02T18:22:40.5531+01:00"),
            _tier(14587202, "Entrée tarif réduit", "Étudiants et demandeurs d'emploi, justificatif demandé à l'entrée", 1500, 2,
                  [_SIZE, _CLUB], saleEndDate="2026-06-19T23:59:00+02:00"),
            _tier(14587203, "Entrée enfant (-12 ans)", "Gratuit, accompagné d'un adulte", 0, 4, [_SIZE]),
        ],
        "activityType": "Concert(s) / Spectacle(s)", "activityTypeId": 4,
        "place": {"address": "12 quai Saint-Antoine", "name": "Salle des fêtes du Quai", "city": "Lyon", "zipCode": "69002",
                  "country": "FRA", "geoLocation": {"latitude": 45.7625, "longitude": 4.8302}},
        "saleEndDate": "2026-06-20T18:00:00+02:00", "saleStartDate": "2026-02-01T00:00:00+01:00",
        "banner": {"fileName": "croppedimage-8b1f0c2d7e3a4f55a1c9d0e2f3a4b5c6.png",
                   "publicUrl": f"{_CDN}/photos/evenements/croppedimage-8b1f0c2d7e3a4f55a1c9d0e2f3a4b5c6.png"},
        "currency": "EUR", "description": "Soirée de gala annuelle : spectacle de jonglerie lumineuse et repas partagé.",
        "startDate": "2026-06-20T19:00:00+02:00", "endDate": "2026-06-21T01:00:00+02:00",
        "meta": {"createdAt": _T0, "updatedAt": "2026-03-02T18:22:40.5531+01:00"}, "state": "Public", "title": "Soirée de gala 2026",
        "widgetButtonUrl": _FORM_URL + "/widget-bouton", "widgetFullUrl": widget,
        "widgetVignetteHorizontalUrl": _FORM_URL + "/widget-vignette-horizontale", "widgetVignetteVerticalUrl": _FORM_URL + "/widget-vignette",
        "formSlug": DEMO_FORM_SLUG, "formType": DEMO_FORM_TYPE, "url": _FORM_URL, "organizationSlug": DEMO_ORGANIZATION,
    }


def demo_organization():
    return {"isAuthenticated": True, "isCashInCompliant": True, "banner": f"{_CDN}/photos/festival-des-lumieres-banner.png",
            "fiscalReceiptEligibility": False, "fiscalReceiptIssuanceEnabled": False, "type": "Association1901", "category": "Culture",
            "address": "12 quai Saint-Antoine, 69002 Lyon", "geolocation": {"latitude": 45.7625, "longitude": 4.8302},
            "logo": f"{_CDN}/logos/festival-des-lumieres-3f2a9c1be0d44c7a.png", "name": _ORG["organizationName"],
            "role": "OrganizationAdmin", "city": "Lyon", "zipCode": "69002", "description": "Association de jonglerie lumineuse et d'arts de rue",
            "updateDate": "2026-02-14T16:51:09.187+01:00", "url": _WWW, "organizationSlug": DEMO_ORGANIZATION}


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_date(value):
    """HelloAsso date-time (up to 7 fractional digits; no zone = UTC) -> aware datetime, or None."""
    m = _ISO.match(value or "")
    if not m:
        return None
    y, mo, d, h, mi, s, frac, tz = m.groups()
    tz = "+00:00" if tz in (None, "Z") else tz
    return datetime.datetime.fromisoformat(f"{y}-{mo}-{d}T{h}:{mi}:{s}.{(frac or '0').ljust(6, '0')[:6]}{tz}")


@functools.lru_cache(maxsize=100000)
def _parse_date_cached(value):
    """:func:`parse_date` of the stored dates, remembered: listings sort thousands of rows per request."""
    return parse_date(value)


def _ticks(value):
    """.NET ticks of the local wall-clock time of an ISO date-time (the qrCode scheme of §3.2)."""
    y, mo, d, h, mi, s, frac, _ = _ISO.match(value).groups()
    seconds = (datetime.date(int(y), int(mo), int(d)).toordinal() - 1) * 86400 + int(h) * 3600 + int(mi) * 60 + int(s)
    return seconds * 10 ** 7 + int((frac or "0").ljust(7, "0")[:7])


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def _split(amount, parts):
    """``amount`` cents in ``parts`` installments, the first one taking the remainder."""
    if parts <= 1:
        return [amount]
    base = amount // parts
    return [amount - base * (parts - 1)] + [base] * (parts - 1)


def _errors(status, message, code="Error"):
    return json_response({"errors": [{"code": code, "message": message}]}, status=status)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeHelloAsso(FakeServer):
    label = "HelloAsso simulator (not the real HelloAsso)"

    def __init__(self, *args, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, signature_key=DEMO_SIGNATURE_KEY,
                 expires_in=1799, page_index_overflow_500=True, seed=True, demo=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.client_id, self.client_secret, self.signature_key = client_id, client_secret, signature_key
        self.expires_in = expires_in
        self.page_index_overflow_500 = page_index_overflow_500
        self.organization = demo_organization()
        self.forms = {(DEMO_FORM_TYPE, DEMO_FORM_SLUG): demo_form()}
        self.orders = {}  # id -> OrderDetail, as the API would return it
        self.access_tokens, self.refresh_tokens = {}, set()
        self._cursors = {}
        self._state_lock = threading.RLock()
        self._ids = {k: itertools.count(start) for k, start in
                     (("order", 128452001), ("item", 215906001), ("payment", 104772001), ("refund", 33201))}
        if seed:
            self._seed()
        if demo:
            self.seed_demo()

    # -- OAuth2 ------------------------------------------------------------------------------------

    @route("POST", r"/oauth2/token")
    def token(self, req):
        if "application/x-www-form-urlencoded" not in (req.header("Content-Type") or ""):
            return json_response({"error": "invalid_request", "error_description": "The request must be form-encoded"}, status=400)
        form = req.form
        client_id, client_secret = req.basic_auth or (form.get("client_id"), form.get("client_secret"))
        grant = form.get("grant_type")
        if grant not in ("client_credentials", "refresh_token"):
            return json_response({"error": "unsupported_grant_type", "error_description": f"Unsupported grant_type '{grant}'"}, status=400)
        # a refresh needs no secret (§1.3), but a client id, when sent, must be right
        if (client_id, client_secret) != (self.client_id, self.client_secret) and (grant == "client_credentials" or client_id not in (None, self.client_id)):
            return json_response({"error": "unauthorized_client", "error_description": f"Invalid client_id '{client_id}'"}, status=400)
        with self._state_lock:
            if grant == "refresh_token":
                if form.get("refresh_token") not in self.refresh_tokens:
                    return json_response({"error": "invalid_grant", "error_description": "Invalid refresh token"}, status=400)
                self.refresh_tokens.discard(form["refresh_token"])
            now = int(time.time())
            claims = {"jti": secrets.token_hex(16), "cps": ["AccessPublicData", "AccessTransactions", "Checkout"],
                      "urs": "OrganizationAdmin", "nbf": now, "exp": now + self.expires_in}
            access = ".".join([_b64url(b'{"alg":"RS256","typ":"JWT"}'), _b64url(json.dumps(claims).encode()),
                               _b64url(b"fake-signature-" + secrets.token_bytes(8))])
            refresh = _b64url(secrets.token_bytes(24)) + ".fake-refresh-token"
            self.access_tokens[access] = now + self.expires_in
            self.refresh_tokens.add(refresh)
        return json_response({"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": self.expires_in})

    def expire_access_tokens(self):
        """Make every issued access token fail with 401, as after its 30 minutes (refresh tokens stay valid)."""
        with self._state_lock:
            self.access_tokens = dict.fromkeys(self.access_tokens, 0)

    def dispatch(self, req):
        if req.path.startswith("/v5/"):
            with self._state_lock:
                expires_at = self.access_tokens.get(req.bearer)
            if not expires_at or expires_at < time.time():
                return Response(401, b"", {})
        return super().dispatch(req)

    def not_found(self, req):
        return _errors(404, "Resource not found")

    # -- data --------------------------------------------------------------------------------------

    def _seed(self):
        claire = {"email": "claire.martin@example.org", "address": "8 rue des Capucins", "city": "Lyon", "zipCode": "69001", "country": "FRA",
                  "dateOfBirth": "1987-09-23T00:00:00+02:00", "firstName": "Claire", "lastName": "Martin"}
        self.add_order(claire, [
            {"id": 215904871, "tier": 14587201, "user": ("Claire", "Martin"), "answers": {5501231: "M", 5501232: "Les Balles Folles"},
             "options": [3051871]},
            {"id": 215904872, "tier": 14587202, "user": ("Hugo", "Martin"), "answers": {5501231: "L"}},
        ], order_id=128450311, date="2026-04-03T20:14:52.8311402+02:00", created="2026-04-03T20:13:37.1844926+02:00",
            updated="2026-04-03T20:14:53.0125573+02:00", payment_id=104771203, payment_date="2026-04-03T20:14:51.9902147+02:00",
            payment_updated="2026-04-03T20:14:52.2417736+02:00")
        thomas = {"email": "t.nguyen@example.net", "country": "FRA", "firstName": "Thomas", "lastName": "Nguyen"}
        self.add_order(thomas, [{"id": 215904950, "tier": 14587202, "user": ("Thomas", "Nguyen"), "answers": {5501231: "S"}}],
                       order_id=128450377, date="2026-04-05T11:03:01.7726519+02:00", created="2026-04-05T11:02:10.4408813+02:00",
                       payment_id=104771288, payment_date="2026-04-05T11:03:00.9118265+02:00")
        self.refund_payment(104771288, refund_id=33120, requested_at="2026-04-12T09:40:55.6120094+02:00",
                            at="2026-04-12T09:41:18.0536402+02:00")
        sophie = {"email": "famille.roux@example.com", "address": "3 chemin des Lilas", "city": "Villeurbanne", "zipCode": "69100",
                  "country": "FRA", "firstName": "Sophie", "lastName": "Roux"}
        self.add_order(sophie, [
            {"id": 215905611, "tier": 14587203, "user": ("Lina", "Roux"), "answers": {5501231: "XS"}},
            {"id": 215905612, "tier": 14587203, "user": ("Noé", "Roux"), "answers": {5501231: "XS"}, "state": "Canceled"},
        ], order_id=128451002, date="2026-04-07T17:45:03.9012844+02:00", created="2026-04-07T17:45:03.3301157+02:00",
            updated="2026-04-09T08:12:44.1873302+02:00")

    def seed_demo(self):
        """
        The demo of ``make run`` (on top of the seeded samples): a fourth rate paid in three installments, a promo
        code, and a few more orders, built with :meth:`add_order` so that they read exactly like the API's.
        """
        with self._state_lock:
            form = self.forms[(DEMO_FORM_TYPE, DEMO_FORM_SLUG)]
            if not any(t["id"] == DEMO_INSTALLMENT_TIER for t in form["tiers"]):
                form["tiers"].append(_tier(DEMO_INSTALLMENT_TIER, "Pass soutien (paiement en 3 fois)",
                                           "Soirée, repas et soutien à l'association, payable en trois fois", 9000, 2, [_SIZE, _CLUB],
                                           paymentFrequency="Installment",
                                           terms=[{"date": "2026-05-01T00:00:00+02:00", "amount": 3000},
                                                  {"date": "2026-06-01T00:00:00+02:00", "amount": 3000}]))
        people = [("Julie", "Bernard", "julie.bernard@example.org", "Lyon", "69003"),
                  ("Karim", "Haddad", "karim.haddad@example.net", "Vénissieux", "69200"),
                  ("Élodie", "Petit", "elodie.petit@example.com", "Caluire-et-Cuire", "69300"),
                  ("Marc", "Lefebvre", "marc.lefebvre@example.org", "Lyon", "69007")]

        def payer(i):
            first, last, email, city, zipcode = people[i]
            return {"email": email, "firstName": first, "lastName": last, "city": city, "zipCode": zipcode, "country": "FRA"}

        self.add_order(payer(0), [
            {"tier": 14587201, "user": ("Julie", "Bernard"), "answers": {5501231: "S", 5501232: "Jongle & Co"}, "options": [3051871],
             "discount": {"code": DEMO_PROMO_CODE, "amount": 500}},
            {"tier": 14587201, "user": ("Paul", "Bernard"), "answers": {5501231: "L"}, "discount": {"code": DEMO_PROMO_CODE, "amount": 500}},
        ], date="2026-04-15T18:02:11.5012+02:00", created="2026-04-15T18:01:02.118+02:00")
        self.add_order(payer(1), [{"tier": DEMO_INSTALLMENT_TIER, "user": ("Karim", "Haddad"), "answers": {5501231: "XL"}}],
                       date="2026-04-18T09:31:40.2207+02:00", created="2026-04-18T09:30:12.4+02:00", installments=3)
        self.add_order(payer(2), [
            {"tier": 14587202, "user": ("Élodie", "Petit"), "answers": {5501231: "M", 5501232: "Cirque du Rhône"}},
            {"tier": 14587203, "user": ("Nina", "Petit"), "answers": {5501231: "XS"}},
        ], date="2026-04-21T12:47:05.0931+02:00", created="2026-04-21T12:45:51.77+02:00")
        self.add_order(payer(3), [{"tier": 14587201, "user": ("Marc", "Lefebvre"), "answers": {5501231: "XL"}, "options": [3051871]}],
                       date="2026-04-22T21:10:58.734+02:00", created="2026-04-22T21:09:30.01+02:00")

    def add_order(self, payer, lines, *, order_id=None, date=None, created=None, updated=None, payment_id=None, payment_date=None,
                  payment_updated=None, form=(DEMO_FORM_TYPE, DEMO_FORM_SLUG), installments=1):
        """
        Add an order to ``form`` and return it. ``payer`` is a Payer dict (§3.2); each line is a dict with ``tier``
        (tier id), ``user`` ((first, last)), optional ``answers`` ({custom field id: text}), ``options`` (extra option
        ids), ``discount`` ({"code", "amount"}: a promo code, taken off the item's amount), ``state`` (default
        Processed) and ``id``. A non-free order gets one Authorized card payment, or with ``installments`` > 1 an
        installment plan: the first installment Authorized, the next ones Pending a month apart (§3.3).
        """
        with self._state_lock:
            form_data = self.forms[form]
            tiers = {t["id"]: t for t in form_data["tiers"]}
            order_id = order_id or next(self._ids["order"])
            created = created or _now()
            date, updated = date or created, updated or created
            total = sum(tiers[ln["tier"]]["price"] - (ln.get("discount") or {}).get("amount", 0)
                        + sum(o["price"] for o in tiers[ln["tier"]]["extraOptions"] if o["id"] in ln.get("options", ())) for ln in lines)
            pid = (payment_id or next(self._ids["payment"])) if total else None
            pids = [pid] + [next(self._ids["payment"]) for _ in range(installments - 1)] if pid else []
            items, shares = [], []
            for ln in lines:
                tier = tiers[ln["tier"]]
                labels = {f["id"]: f for f in tier["customFields"]}
                opts = [o for o in tier["extraOptions"] if o["id"] in ln.get("options", ())]
                item_id = ln.get("id") or next(self._ids["item"])
                opt_total = sum(o["price"] for o in opts)
                discount = ln.get("discount")
                amount = tier["price"] - (discount or {}).get("amount", 0)
                parts = _split(amount + opt_total, len(pids))
                item = {"payments": [{"id": p, "shareAmount": part} for p, part in zip(pids, parts)]} if pid else {}
                item.update(name=tier["label"], user={"firstName": ln["user"][0], "lastName": ln["user"][1]},
                            priceCategory="Fixed" if tier["price"] else "Free", **({"discount": dict(discount)} if discount else {}),
                            customFields=[{"id": fid, "name": labels[fid]["label"], "type": labels[fid]["type"], "answer": answer}
                                          for fid, answer in ln.get("answers", {}).items()])
                if opts:
                    item["options"] = [{"name": o["label"], "amount": o["price"], "priceCategory": "Fixed", "isRequired": o["isRequired"],
                                        "optionId": o["id"]} for o in opts]
                qr = base64.b64encode(f"{item_id}:{_ticks(created)}".encode()).decode()
                item.update(ticketUrl=f"{form_data['url']}/billets/{order_id}", qrCode=qr, tierDescription=tier["description"],
                            tierId=tier["id"], id=item_id, amount=amount, type=tier["tierType"], initialAmount=tier["price"],
                            state=ln.get("state", "Processed"))
                items.append(item)
                for n, part in enumerate(parts):
                    share = {"id": item_id, "shareAmount": part, "shareItemAmount": _split(amount, len(pids))[n]}
                    shares.append((n, {**share, "shareOptionsAmount": _split(opt_total, len(pids))[n]} if opts else share))
            payments = []
            for n, p in enumerate(pids):
                when = payment_date or date
                if n:  # a future installment: scheduled a month apart, not taken yet
                    when = (parse_date(when) + datetime.timedelta(days=30 * n)).isoformat()
                payments.append({
                    "items": [sh for k, sh in shares if k == n], "cashOutState": "Unknown" if n else "MoneyIn",
                    "paymentReceiptUrl": f"{form_data['url']}/paiement-attestation/{order_id}/{p}",
                    "id": p, "amount": sum(sh["shareAmount"] for k, sh in shares if k == n), "date": when, "paymentMeans": "Card",
                    "installmentNumber": n + 1, "state": "Pending" if n else "Authorized",
                    "meta": {"createdAt": created, "updatedAt": payment_updated or updated}, "refundOperations": []})
            discount_total = sum((ln.get("discount") or {}).get("amount", 0) for ln in lines)
            order = {"payer": dict(payer), "items": items, "payments": payments, "amount": {"total": total, "vat": 0, "discount": discount_total},
                     "id": order_id, "date": date, "formSlug": form_data["formSlug"], "formType": form_data["formType"], **_ORG,
                     "meta": {"createdAt": created, "updatedAt": updated}}
            self.orders[order_id] = order
            return copy.deepcopy(order)

    def _find_payment(self, payment_id):
        for order in self.orders.values():
            for payment in order["payments"]:
                if payment["id"] == payment_id:
                    return order, payment
        return None, None

    def refund_payment(self, payment_id, amount=None, *, refund_id=None, requested_at=None, at=None, cancel_order=False):
        """Refund a payment as HelloAsso shows it since 2025-12 (§7.4): state on the payment, items unchanged
        unless ``cancel_order``. A partial refund leaves the payment Authorized."""
        with self._state_lock:
            order, payment = self._find_payment(payment_id)
            at = at or _now()
            amount = payment["amount"] if amount is None else amount
            payment["refundOperations"].append({"id": refund_id or next(self._ids["refund"]), "amount": amount, "amountTip": 0,
                                                "status": "Processed", "meta": {"createdAt": requested_at or at, "updatedAt": at}})
            if sum(r["amount"] for r in payment["refundOperations"] if r["status"] == "Processed") >= payment["amount"]:
                payment["state"] = payment["cashOutState"] = "Refunded"
            payment["meta"]["updatedAt"] = order["meta"]["updatedAt"] = at
            if cancel_order:
                for item in order["items"]:
                    item["state"] = "Canceled"

    def cancel_item(self, item_id, state="Canceled"):
        with self._state_lock:
            for order, item in [(o, i) for o in self.orders.values() for i in o["items"] if i["id"] == item_id]:
                item["state"], order["meta"]["updatedAt"] = state, _now()

    # -- views of the stored orders (§3.3) ----------------------------------------------------------

    @staticmethod
    def _order_light(order):
        return {k: order[k] for k in ("id", "date", "formSlug", "formType", *_ORG, "checkoutIntentId", "meta") if k in order}

    def _payment_view(self, order, payment):
        items = {i["id"]: i for i in order["items"]}
        shares = [{**{k: v for k, v in share.items() if k != "id"}, "id": share["id"], "amount": items[share["id"]]["amount"],
                   "type": items[share["id"]]["type"], "state": items[share["id"]]["state"], "name": items[share["id"]]["name"]}
                  for share in payment["items"]]
        rest = {k: v for k, v in payment.items() if k != "items"}
        return {"order": self._order_light(order), "payer": order["payer"], "items": shares, **rest}

    def _item_view(self, order, item):
        payments = {p["id"]: p for p in order["payments"]}
        keys = ("id", "amount", "amountTip", "date", "paymentMeans", "installmentNumber", "state", "type", "meta", "refundOperations", "cashOutState")
        pays = [{**{k: payments[s["id"]][k] for k in keys if k in payments[s["id"]]}, "shareAmount": s["shareAmount"]} for s in item.get("payments", [])]
        view = {k: v for k, v in item.items() if k != "payments"}
        return {"order": self._order_light(order), "payer": order["payer"], **view, **({"payments": pays} if pays else {})}

    def order_notification(self, order_id):
        with self._state_lock:
            return {"data": {**copy.deepcopy(self.orders[order_id]), "isAnonymous": False, "isAmountHidden": False}, "eventType": "Order"}

    def payment_notification(self, payment_id):
        with self._state_lock:
            order, payment = self._find_payment(payment_id)
            data = copy.deepcopy(self._payment_view(order, payment))
            form = self.forms.get((order["formType"], order["formSlug"]), {})
        data["order"].update(formName=form.get("title"), isAnonymous=False, isAmountHidden=False)
        return {"data": data, "eventType": "Payment"}

    def send_notification(self, url, payload, *, signature_key=None, timeout=10.0):
        """POST a notification as HelloAsso does (§4.2); signed with ``x-ha-signature`` only when a key is given (§4.3)."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if signature_key:
            headers["x-ha-signature"] = sign(signature_key, body)
        return deliver(url, body, headers, timeout=timeout)

    # -- API routes --------------------------------------------------------------------------------

    def _form_key(self, req):
        canonical = {t.lower(): t for t in FORM_TYPES}.get(req.match.group("ftype").lower())
        return canonical, req.match.group("fslug")

    @route("GET", r"/v5/organizations/(?P<org>[^/]+)")
    def get_organization(self, req):
        if req.match.group("org") != self.organization["organizationSlug"]:
            return _errors(404, "Organization not found")
        return json_response(self.organization)

    @route("GET", r"/v5/organizations/(?P<org>[^/]+)/forms")
    def list_forms(self, req):
        """FormLightModel list (§2.2), without tiers, newest first; ``formTypes``/``states`` filters."""
        if req.match.group("org") != self.organization["organizationSlug"]:
            return _errors(404, "Organization not found")
        keys = ("formSlug", "formType", "title", "url", "state", "startDate", "endDate", "currency", "description", "meta",
                "organizationSlug", "privateTitle", "saleStartDate", "saleEndDate", "banner", "logo")
        with self._state_lock:
            forms = [{k: f[k] for k in keys if k in f} for f in self.forms.values()]
        forms = [f for f in forms if not req.query.get("formTypes") or f["formType"] in req.query["formTypes"]]
        forms = [f for f in forms if not req.query.get("states") or f["state"] in req.query["states"]]
        forms.sort(key=lambda f: f["meta"]["createdAt"], reverse=True)
        size, index = int(req.arg("pageSize", "20")), int(req.arg("pageIndex", "1"))
        page = forms[(index - 1) * size:index * size]
        return json_response({"data": page, "pagination": {"pageSize": size, "totalCount": -1, "pageIndex": index, "totalPages": -1}})

    @route("GET", r"/v5/organizations/(?P<org>[^/]+)/forms/(?P<ftype>[^/]+)/(?P<fslug>[^/]+)/public")
    def form_public(self, req):
        with self._state_lock:
            form = self.forms.get(self._form_key(req))
        if not form or req.match.group("org") != form["organizationSlug"]:
            return _errors(404, "Form not found")
        return json_response(form)

    @route("GET", r"/v5/organizations/(?P<org>[^/]+)/forms/(?P<ftype>[^/]+)/(?P<fslug>[^/]+)/(?P<what>orders|items|payments)")
    def form_lists(self, req):
        if req.match.group("org") != self.organization["organizationSlug"]:
            return Response(403, b"", {})
        key, what = self._form_key(req), req.match.group("what")
        if key not in self.forms:
            return _errors(404, "Form not found")
        with self._state_lock:
            orders = [o for o in self.orders.values() if (o["formType"], o["formSlug"]) == key]
            # rows hold the stored objects as they are (state, type and name read the same as on their views);
            # only the page returned is turned into views and copied (see _paginate)
            if what == "orders":
                rows = [(o["date"], o["meta"]["updatedAt"], o["meta"]["createdAt"], o, o) for o in orders]
            elif what == "items":
                rows = [(o["date"], o["meta"]["updatedAt"], o["meta"]["createdAt"], o, i) for o in orders for i in o["items"]]
            else:
                rows = [(p["date"], p["meta"]["updatedAt"], p["meta"]["createdAt"], o, p) for o in orders for p in o["payments"]]
        if what != "orders":
            states = req.query.get("states" if what == "payments" else "itemStates")
            rows = [r for r in rows if not states or r[4]["state"] in states]
        if what == "items":
            rows = [r for r in rows if not req.query.get("tierTypes") or r[4].get("type") in req.query["tierTypes"]]
            rows = [r for r in rows if not req.arg("tierName") or r[4].get("name") == req.arg("tierName")]
        return self._paginate(req, rows, what, details=req.arg("withDetails", "false").lower() == "true")

    def _paginate(self, req, rows, what, *, details):
        size, index = req.arg("pageSize", "20"), req.arg("pageIndex", "1")
        if not size.isdigit() or not 1 <= int(size) <= MAX_PAGE_SIZE or not index.isdigit() or int(index) < 1:
            return _errors(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}, pageIndex at least 1")
        size, index = int(size), int(index)
        order = (req.arg("sortOrder") or "Desc").capitalize()
        field = {"updatedate": 1, "creationdate": 2}.get((req.arg("sortField") or "Date").lower(), 0)
        if order not in ("Asc", "Desc"):
            return _errors(400, f"The value '{req.arg('sortOrder')}' is not valid for sortOrder.")
        start, end = parse_date(req.arg("from")), parse_date(req.arg("to"))
        needle = (req.arg("userSearchKey") or "").lower()
        selected = []
        for row in rows:
            when, data = _parse_date_cached(row[0]), row[4]
            people = [row[3]["payer"], *(i.get("user", {}) for i in row[3]["items"])]
            if (start and when < start) or (end and when >= end):
                continue
            if needle and not any(needle in str(p.get(k, "")).lower() for p in people for k in ("firstName", "lastName", "email")):
                continue
            selected.append(((_parse_date_cached(row[field]), data["id"]), row[2], row))
        selected.sort(key=lambda r: r[0], reverse=order == "Desc")
        token = req.arg("continuationToken")
        if token:
            with self._state_lock:
                after = self._cursors.get(token)
            if after is None:
                return _errors(400, "Invalid continuationToken")
            rest = [r for r in selected if (r[0] < after if order == "Desc" else r[0] > after)]
            offset = len(selected) - len(rest)
        else:
            offset = (index - 1) * size
            if self.page_index_overflow_500 and index > 1 and offset >= len(selected):
                return _errors(500, "An error has occurred.", code="InternalServerError")
        page = selected[offset:offset + size]
        if page:
            last = page[-1]
            token = re.sub(r"\D", "", last[1])[:14] + f"_{last[2][4]['id']}"
            with self._state_lock:
                self._cursors[token] = last[0]
        with self._state_lock:
            view = {"orders": lambda o, obj: obj, "items": self._item_view, "payments": self._payment_view}[what]
            data = [copy.deepcopy(view(r[2][3], r[2][4])) for r in page]
        for obj in data if not details else []:  # customFields (and, on items, options) only with withDetails=true
            for item in obj["items"] if what == "orders" else [obj] if what == "items" else []:
                item.pop("customFields", None)
                for opt in item.get("options", []):
                    opt.pop("customFields", None)
                if what == "items":
                    item.pop("options", None)
        return json_response({"data": data, "pagination": {"pageSize": size, "totalCount": -1, "pageIndex": -(-offset // size) + 1,
                                                           "totalPages": -1, "continuationToken": token}})

    @route("GET", r"/v5/orders/(?P<id>\d+)")
    def get_order(self, req):
        with self._state_lock:
            order = copy.deepcopy(self.orders.get(int(req.match.group("id"))))
        if not order:
            return _errors(404, f"Code : 102 - The order specified is not found, order id : '{req.match.group('id')}'")
        return json_response(order)

    @route("GET", r"/v5/payments/(?P<id>\d+)")
    def get_payment(self, req):
        with self._state_lock:
            order, payment = self._find_payment(int(req.match.group("id")))
            view = copy.deepcopy(self._payment_view(order, payment)) if payment else None
        if not view:
            return _errors(404, f"Code : 101 - The payment specified is not found, payment id : '{req.match.group('id')}'")
        if req.arg("withFailedRefundOperation", "false").lower() != "true":
            view["refundOperations"] = [r for r in view["refundOperations"] if r["status"] not in FAILED_REFUND_STATES]
        return json_response(view)
