"""
Thin API clients for Mautic and Invoice Ninja over the core's HTTP layer (timeouts, error classes, credentials only
to the configured host). They speak HTTP only; deciding what an error means for a sync job is the core's
:mod:`pretix_integrations_core.datasync`.
"""
import hashlib
import threading
import time

from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.errors import ServiceBadResponse, ServiceConfigurationError, ServiceRejected
from pretix_integrations_core.httpclient import HttpClient, json_body

SERVICE_MAUTIC = "Mautic"
SERVICE_NINJA = "Invoice Ninja"

#: OAuth2 access tokens of Mautic's client_credentials grant, per worker process: {(scope, url, client id): (token, expires)}
_mautic_tokens = {}
_tokens_lock = threading.Lock()


class MauticClient:
    def __init__(self, base_url, auth, user, password, *, scope, **http_kwargs):
        from .config import AUTH_OAUTH2
        self.oauth2 = auth == AUTH_OAUTH2
        self.user, self.password = user, password
        self.http = HttpClient(SERVICE_MAUTIC, base_url, scope=scope, **http_kwargs)
        # a new client secret (the organiser changed it) never reuses a token of the old one
        self._token_key = (scope, self.http.base_url, user, hashlib.sha256(password.encode()).hexdigest())

    # -- auth ----------------------------------------------------------------------------------------

    def _token(self, renew=False):
        with _tokens_lock:
            cached = _mautic_tokens.get(self._token_key)
        if cached and not renew and cached[1] > time.time():
            return cached[0]
        try:
            resp = self.http.request("POST", "/oauth/v2/token", operation=str(_("get an access token")),
                                     data={"grant_type": "client_credentials", "client_id": self.user, "client_secret": self.password})
        except ServiceRejected as e:  # 400 invalid_client: the organiser's client id or secret is wrong
            raise ServiceConfigurationError(SERVICE_MAUTIC, str(_("get an access token")), status=e.status, payload=e.payload) from None
        data = json_body(resp, SERVICE_MAUTIC, "token")
        token = data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise ServiceBadResponse(SERVICE_MAUTIC, str(_("get an access token")))
        lifetime = float(data.get("expires_in") or 3600)
        with _tokens_lock:
            _mautic_tokens[self._token_key] = (token, time.time() + max(30.0, lifetime - 60))
        return token

    def _request(self, method, path, *, operation, **kwargs):
        if not self.oauth2:
            import base64
            basic = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return self.http.request(method, path, operation=operation, headers={"Authorization": f"Basic {basic}"}, **kwargs)
        token = self._token()
        try:
            return self.http.request(method, path, operation=operation, headers={"Authorization": f"Bearer {token}"}, **kwargs)
        except ServiceConfigurationError as e:
            if e.status != 401:
                raise
            # the token expired early or was revoked: get a new one, once
            token = self._token(renew=True)
            return self.http.request(method, path, operation=operation, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    # -- API -----------------------------------------------------------------------------------------

    def ping(self):
        if self.oauth2:
            self._token(renew=True)
        self._request("GET", "/api/contacts", operation=str(_("list contacts")), params={"limit": 1, "minimal": "true"})

    def upsert_contact(self, body: dict):
        """``POST /api/contacts/new`` (Mautic deduplicates on email): returns (created, contact)."""
        op = str(_("create or update a contact"))
        resp = self._request("POST", "/api/contacts/new", operation=op, json=body)
        data = json_body(resp, SERVICE_MAUTIC, op)
        contact = data.get("contact") if isinstance(data, dict) else None
        if not isinstance(contact, dict) or not contact.get("id"):
            raise ServiceBadResponse(SERVICE_MAUTIC, op, status=resp.status_code)
        return resp.status_code == 201, contact

    def add_to_segment(self, segment_id: int, contact_id: int):
        self._request("POST", f"/api/segments/{int(segment_id)}/contact/{int(contact_id)}/add", operation=str(_("add a contact to a segment")))

    def add_to_campaign(self, campaign_id: int, contact_id: int):
        self._request("POST", f"/api/campaigns/{int(campaign_id)}/contact/{int(contact_id)}/add", operation=str(_("add a contact to a campaign")))

    def remove_from_segment(self, segment_id: int, contact_id: int):
        self._request("POST", f"/api/segments/{int(segment_id)}/contact/{int(contact_id)}/remove", operation=str(_("remove a contact from a segment")))

    def remove_from_campaign(self, campaign_id: int, contact_id: int):
        self._request("POST", f"/api/campaigns/{int(campaign_id)}/contact/{int(contact_id)}/remove",
                      operation=str(_("remove a contact from a campaign")))

    def do_not_contact(self, contact_id: int, comments: str):
        """Mark the contact "do not contact" by email, reason "unsubscribed" (1)."""
        self._request("POST", f"/api/contacts/{int(contact_id)}/dnc/email/add", operation=str(_("unsubscribe a contact")),
                      json={"reason": 1, "comments": comments})

    def contact_url(self, contact_id):
        return f"{self.http.base_url}/s/contacts/view/{int(contact_id)}"


def _hashed(value):
    """Invoice Ninja ids are short hashid strings; anything else (from a payload) never reaches a URL path."""
    value = str(value or "")
    if not value.isalnum() or len(value) > 64:
        raise ServiceBadResponse(SERVICE_NINJA, str(_("read an id")))
    return value


class InvoiceNinjaClient:
    def __init__(self, base_url, token, *, scope, **http_kwargs):
        self.http = HttpClient(SERVICE_NINJA, base_url, scope=scope, headers={
            "X-API-TOKEN": token, "X-Requested-With": "XMLHttpRequest", "Accept": "application/json",
        }, **http_kwargs)

    def _data(self, resp, op):
        body = json_body(resp, SERVICE_NINJA, op)
        if not isinstance(body, dict) or "data" not in body:
            raise ServiceBadResponse(SERVICE_NINJA, op, status=resp.status_code)
        return body["data"]

    def _list(self, path, op, params, max_pages=5):
        rows = []
        for page in range(1, max_pages + 1):
            data = self._data(self.http.request("GET", path, operation=op, params={**params, "page": page, "per_page": 100}), op)
            if not isinstance(data, list):
                raise ServiceBadResponse(SERVICE_NINJA, op)
            rows += data
            if len(data) < 100:
                break
        return rows

    def ping(self):
        self.http.request("GET", "/api/v1/clients", operation=str(_("list clients")), params={"per_page": 1})

    def find_client(self, id_number):
        """The client with this ``id_number``: an active or archived one first, else a deleted one (its id_number stays taken)."""
        rows = [r for r in self._list("/api/v1/clients", str(_("find a client")), {"id_number": id_number}) if r.get("id_number") == id_number]
        return next((r for r in rows if not r.get("is_deleted")), None) or next(iter(rows), None)

    def create_client(self, body):
        op = str(_("create a client"))
        return self._data(self.http.request("POST", "/api/v1/clients", operation=op, json=body), op)

    def update_client(self, client_id, body):
        op = str(_("update a client"))
        return self._data(self.http.request("PUT", f"/api/v1/clients/{client_id}", operation=op, json=body), op)

    def find_invoice(self, number):
        """Also finds archived and deleted invoices: their numbers stay taken."""
        rows = self._list("/api/v1/invoices", str(_("find an invoice")), {"number": number})
        return next((r for r in rows if r.get("number") == number), None)

    def create_invoice(self, body, send_email=False):
        op = str(_("create an invoice"))
        params = {"mark_sent": "true", **({"send_email": "true"} if send_email else {})}
        return self._data(self.http.request("POST", "/api/v1/invoices", operation=op, params=params, json=body), op)

    def get_invoice(self, invoice_id):
        op = str(_("read an invoice"))
        return self._data(self.http.request("GET", f"/api/v1/invoices/{_hashed(invoice_id)}", operation=op), op)

    def update_invoice(self, invoice_id, body):
        op = str(_("update an invoice"))
        return self._data(self.http.request("PUT", f"/api/v1/invoices/{_hashed(invoice_id)}", operation=op, json=body), op)

    def cancel_invoice(self, invoice_id):
        """Invoice Ninja's ``cancel`` action: the open balance becomes 0, what was paid stays recorded."""
        op = str(_("cancel an invoice"))
        return self.http.request("POST", "/api/v1/invoices/bulk", operation=op, json={"action": "cancel", "ids": [invoice_id]})

    def get_payment(self, payment_id):
        op = str(_("read a payment"))
        return self._data(self.http.request("GET", f"/api/v1/payments/{_hashed(payment_id)}", operation=op), op)

    def get_client(self, client_id):
        op = str(_("read a client"))
        return self._data(self.http.request("GET", f"/api/v1/clients/{_hashed(client_id)}", operation=op), op)

    def list_payments(self, client_id):
        return self._list("/api/v1/payments", str(_("find a payment")), {"client_id": client_id})

    def find_payment(self, client_id, idempotency_key, reference):
        rows = self.list_payments(client_id)
        return next((r for r in rows if not r.get("is_deleted") and (
            r.get("idempotency_key") == idempotency_key or (reference and r.get("transaction_reference") == reference))), None)

    def create_payment(self, body):
        op = str(_("record a payment"))
        # the idempotency key travels in the body: repeating the request is safe, Invoice Ninja refuses a second one
        return self._data(self.http.request("POST", "/api/v1/payments", operation=op, json=body, retry_safe=True), op)

    def refund_payment(self, body):
        op = str(_("refund a payment"))
        return self._data(self.http.request("POST", "/api/v1/payments/refund", operation=op, json=body), op)

    def list_webhooks(self, event_id):
        return self._list("/api/v1/webhooks", str(_("list webhooks")), {"event_id": str(event_id)}, max_pages=2)

    def create_webhook(self, target_url, event_id):
        op = str(_("register a webhook"))
        return self._data(self.http.request("POST", "/api/v1/webhooks", operation=op, json={
            "target_url": target_url, "event_id": str(event_id), "format": "JSON", "rest_method": "post"}), op)

    def invoice_url(self, invoice_id):
        return f"{self.http.base_url}/invoices/{invoice_id}/edit"

    def client_url(self, client_id):
        return f"{self.http.base_url}/clients/{client_id}"
