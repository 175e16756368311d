"""
Fake Invoice Ninja v5 API, after ``shared/docs/crm-apis.md`` §3 and the checklist in §6.2/§6.3. Routes are under
``/api/v1`` (configure ``<fake url>`` as the base URL, as for a self-hosted instance).

- ``X-API-TOKEN`` on every call: 403 ``{"message": "Invalid token", "errors": {}}`` otherwise (§3.1). Errors are
  JSON only when the request sends ``X-Requested-With: XMLHttpRequest`` or a JSON ``Accept``; otherwise Laravel's
  HTML page (a 302 for validation errors), as the real server does.
- Ids are hashid strings (10 characters); an unknown one in a path -> **400** ``No query results for model
  [App\\Models\\<Model>].``; a numeric one -> 400 ``Record with value <n> not found`` (§3.3).
- ``{"data": …}`` envelope, 200 also for creates; lists with ``meta.pagination`` (``page``, ``per_page``,
  ``links.next/previous``), archived and deleted records included unless ``status=active`` (§3.2).
- Clients (§3.4): create, read, update with the contact-replacement rule, list filtered by ``email``,
  ``id_number``, ``number``, ``name``; ``id_number``/``number`` unique -> 422.
- Invoices (§3.5): create/update with computed totals (``uses_inclusive_taxes``), ``number`` unique even
  against archived or deleted ones -> 422 ``errors.number``; triggered actions ``mark_sent``, ``paid``
  (query or body); ``GET /invoices/{id}/{action}`` and ``POST /invoices/bulk`` (``cancel`` drops the open balance of
  a sent or partially paid invoice, status 5); PDF from
  ``/invoices/{id}/download`` and ``/invoice/{invitation_key}/download`` (``application/pdf``, ``%PDF-``).
- Payments (§3.6): ``idempotency_key`` (≤ 64 chars, unique -> 422 ``errors.idempotency_key``), the 1-second
  duplicate guard (same client and amount -> 400 ``Duplicate request``), ``POST /payments/refund``; payments carry
  ``currency_id`` (Invoice Ninja's currency id, the client's currency unless given).
- ``GET``, ``DELETE`` (soft delete) and lists for every entity type.
- Webhooks (§3.7): ``POST /webhooks`` registers; :meth:`fire` POSTs the bare entity JSON (no envelope, no event
  name, **no signature**, only the subscription's custom headers) and deletes a subscription whose target answers
  404/405/410; :meth:`send_webhook` posts to any URL. Deliveries are not retried, nor fired automatically.
"""
import datetime
import html
import itertools
import json
import re
import secrets
import threading
import time

from .fakeserver import FakeServer, Response, deliver, json_response, route, text_response

DEMO_API_TOKEN = "demo-invoiceninja-api-token"
DEMO_TOKEN = DEMO_API_TOKEN  # the name demo/simulators.py looks for
EVENT_CREATE_CLIENT, EVENT_CREATE_INVOICE, EVENT_CREATE_PAYMENT, EVENT_UPDATE_INVOICE, EVENT_DELETE_INVOICE = "1", "2", "4", "8", "9"
CLASSIFICATIONS = ("individual", "business", "company", "partnership", "trust", "charity", "government", "other")
_ALPHABET = "VolejRkNmwbx2PZ5GqK9Y4dBnzs3gtEOpLyiW7M6Hc8QhfJDua1AXvUFrTSI0C"
_MOD, _MUL, _ADD = 62 ** 10, 524287 * 2147483647 * 1009, 104729 * 7919 * 31337
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MODELS = {"clients": "Client", "invoices": "Invoice", "payments": "Payment", "webhooks": "Webhook"}
_FILTERS = {"clients": ("id_number", "number", "name"), "invoices": ("number", "client_id", "po_number"), "payments": ("client_id", "number"),
            "webhooks": ("event_id",)}


def encode_id(n):
    x, out = (n * _MUL + _ADD) % _MOD, ""
    for _ in range(10):
        x, r = divmod(x, 62)
        out += _ALPHABET[r]
    return out


def decode_id(value):
    if not isinstance(value, str) or len(value) != 10 or any(c not in _ALPHABET for c in value):
        return None
    x = sum(_ALPHABET.index(c) * 62 ** i for i, c in enumerate(value))
    n = ((x - _ADD) * pow(_MUL, -1, _MOD)) % _MOD
    return n if 0 < n < 10 ** 9 else None


def _invalid(**errors):
    return json_response({"message": "The given data was invalid.", "errors": {k.replace("__", "."): [v] for k, v in errors.items()}}, status=422)


def _copy(entity):
    return json.loads(json.dumps(entity))


def _msg(message, status):
    return json_response({"message": message}, status=status)


class FakeInvoiceNinja(FakeServer):
    label = "Invoice Ninja simulator (not the real Invoice Ninja)"
    log_name = "Invoice Ninja simulator"

    def __init__(self, *args, api_token=DEMO_API_TOKEN, duplicate_window=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.api_token, self.duplicate_window = api_token, duplicate_window
        self.store = {kind: {} for kind in _MODELS}
        self._ids = {kind: itertools.count(1) for kind in (*_MODELS, "contacts", "paymentables", "invitations")}
        self._recent_payments = []
        self._state_lock = threading.RLock()

    # -- plumbing ----------------------------------------------------------------------------------

    def dispatch(self, req):
        if req.method == "GET" and not req.path.startswith("/api/"):
            return super().dispatch(req)  # the pages a person opens (the demo): no API token
        if req.header("X-API-TOKEN") != self.api_token:
            return json_response({"message": "Invalid token", "errors": {}}, status=403)
        resp = super().dispatch(req)
        wants_json = req.header("X-Requested-With") == "XMLHttpRequest" or "json" in (req.header("Accept") or "")
        if resp.status >= 400 and not wants_json:
            if resp.status == 422:
                return Response(302, b"", {"Location": self.url + "/"})
            return text_response(f"<!DOCTYPE html><html><body><h1>{resp.status}</h1></body></html>", status=resp.status,
                                 content_type="text/html; charset=UTF-8")
        return resp

    # -- what a person sees (the demo): the client and invoice pages the CRM bridge links to, the console lines ----

    def _page(self, title, body, status=200):
        return text_response(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.label)}</title></head><body>"
                             f"<p><b>{html.escape(self.label)}</b></p><h1>{html.escape(title)}</h1>{body}</body></html>",
                             status=status, content_type="text/html; charset=utf-8")

    @route("GET", r"/clients/(?P<id>[^/]+)")
    def client_page(self, req):
        with self._state_lock:
            client = self.store["clients"].get(decode_id(req.match.group("id")))
            if client is None:
                return self._page("Client not found", "", status=404)
            invoices = [i for i in self.store["invoices"].values() if i["client_id"] == client["id"]]
            contacts = ", ".join(f"{c.get('first_name', '')} {c.get('last_name', '')} <{c.get('email', '')}>" for c in client["contacts"])
            rows = "".join(f"<li><a href='/invoices/{i['id']}/edit'>{html.escape(i['number'])}</a>: {i['amount']:.2f}, "
                           f"balance {i['balance']:.2f}</li>" for i in invoices)
            return self._page(f"Client {client.get('display_name') or client.get('name') or client['id']}",
                              f"<p>ID number: {html.escape(str(client.get('id_number') or ''))}</p><p>Contacts: {html.escape(contacts)}</p>"
                              f"<ul>{rows}</ul>")

    @route("GET", r"/invoices/(?P<id>[^/]+)/edit")
    def invoice_page(self, req):
        with self._state_lock:
            invoice = self.store["invoices"].get(decode_id(req.match.group("id")))
            if invoice is None:
                return self._page("Invoice not found", "", status=404)
            lines = "".join(f"<tr><td>{html.escape(str(li.get('product_key', '')))}</td><td>{html.escape(str(li.get('notes', '')))}</td>"
                            f"<td>{li.get('quantity', 1)}</td><td>{li.get('cost', 0)}</td><td>{li.get('tax_rate1', 0)} %</td></tr>"
                            for li in invoice["line_items"])
            payments = [p for p in self.store["payments"].values()
                        if any(pa.get("invoice_id") == invoice["id"] for pa in p.get("paymentables") or [])]
            paid = "".join(f"<li>{p['amount']:.2f} on {html.escape(str(p.get('date')))} ({html.escape(str(p.get('transaction_reference') or ''))}),"
                           f" refunded {float(p.get('refunded') or 0):.2f}</li>" for p in payments)
            status = {"1": "draft", "2": "sent", "3": "partial", "4": "paid", "5": "cancelled", "6": "reversed"}.get(invoice["status_id"], "")
            return self._page(f"Invoice {invoice['number']}",
                              f"<p>Client: <a href='/clients/{invoice['client_id']}'>{invoice['client_id']}</a> - status {status} - "
                              f"amount {invoice['amount']:.2f}, balance {invoice['balance']:.2f}</p>"
                              f"<table><tr><th>Item</th><th>Notes</th><th>Qty</th><th>Cost</th><th>Tax</th></tr>{lines}</table>"
                              f"<p>Payments:</p><ul>{paid}</ul>")

    def describe(self, req, resp):
        """The demo console shows every client, invoice, payment and refund this simulator receives."""
        if req.method not in ("POST", "PUT") or not req.path.startswith("/api/v1/"):
            return None
        try:
            data = (json.loads(resp.body or b"null") or {}).get("data")
        except (ValueError, AttributeError):
            data = None
        kind = req.path[len("/api/v1/"):].split("/")[0]
        if resp.status != 200 or not isinstance(data, dict):
            return f"{req.method} {kind} refused ({resp.status} {resp.body.decode(errors='replace')[:100]})"
        if kind == "clients":
            return f"client {data.get('display_name') or data.get('name')} {'created' if req.method == 'POST' else 'updated'} ({self.url}/clients/{data['id']})"
        if kind == "invoices" and req.method == "POST":
            return f"invoice {data.get('number')} created: {data.get('amount'):.2f} ({self.url}/invoices/{data['id']}/edit)"
        if kind == "payments":
            what = "refund on payment" if req.path.endswith("/refund") else "payment"
            return f"{what} {data.get('number') or data['id']} recorded: {data.get('amount'):.2f}, refunded {float(data.get('refunded') or 0):.2f}"
        return None

    def not_found(self, req):
        other = any(pattern.fullmatch(req.path) for method, pattern, _ in self.routes if method != req.method)
        return _msg("Method not supported for this route" if other else "Route does not exist", 404)

    def _get(self, kind, hashed):
        """(entity, None) or (None, the 400 Invoice Ninja gives for an unknown id)."""
        n = decode_id(hashed)
        entity = self.store[kind].get(n)
        if entity is not None:
            return entity, None
        if str(hashed).isdigit():
            return None, _msg(f"Record with value {hashed} not found", 400)
        return None, _msg(f"No query results for model [App\\Models\\{_MODELS[kind]}].", 400)

    def _new(self, kind, fields):
        n, now = next(self._ids[kind]), int(time.time())
        entity = {"id": encode_id(n), "user_id": encode_id(1), **fields, "is_deleted": False, "created_at": now, "updated_at": now, "archived_at": 0}
        self.store[kind][n] = entity
        return entity

    def _next_number(self, kind):
        taken = {e.get("number") for e in self.store[kind].values()}
        return next(f"{n:04d}" for n in itertools.count(1) if f"{n:04d}" not in taken)

    def _list(self, req, kind, rows):
        statuses = (req.arg("status") or "active,archived,deleted").split(",")
        rows = [r for r in rows if ("deleted" if r["is_deleted"] else "archived" if r["archived_at"] else "active") in statuses]
        if (req.arg("updated_at") or "").isdigit():
            rows = [r for r in rows if r["updated_at"] >= int(req.arg("updated_at"))]
        col, _, direction = (req.arg("sort") or "id|asc").partition("|")
        rows.sort(key=lambda r: (str(r.get(col, "")) if col != "id" else decode_id(r["id"])), reverse=direction == "desc")
        per_page = min(int(req.arg("per_page")) if (req.arg("per_page") or "").isdigit() else 20, 5000) or 20
        page = int(req.arg("page")) if (req.arg("page") or "").isdigit() and int(req.arg("page")) > 0 else 1
        total_pages, chunk = max(1, -(-len(rows) // per_page)), rows[(page - 1) * per_page:page * per_page]
        base = self.url + req.path + "?" + "&".join(f"{k}={v[0]}" for k, v in req.query.items() if k != "page")
        links = {name: f"{base}&page={p}" for name, p in (("previous", page - 1), ("next", page + 1)) if 1 <= p <= total_pages}
        pagination = {"total": len(rows), "count": len(chunk), "per_page": per_page, "current_page": page, "total_pages": total_pages,
                      "links": links or []}
        return json_response({"data": [_copy(r) for r in chunk], "meta": {"pagination": pagination}})

    # -- generic routes ----------------------------------------------------------------------------

    @route("GET", r"/api/v1/(?P<kind>clients|invoices|payments|webhooks)")
    def list_entities(self, req):
        kind, needle = req.match.group("kind"), (req.arg("filter") or "").lower()
        with self._state_lock:
            rows = [e for e in self.store[kind].values() if all(not req.arg(f) or str(e.get(f)) == req.arg(f) for f in _FILTERS[kind])
                    and (not req.arg("email") or any(c["email"] == req.arg("email") for c in e.get("contacts", [])))
                    and (not req.arg("status_id") or e.get("status_id") in req.arg("status_id").split(","))
                    and (not needle or needle in json.dumps(e, ensure_ascii=False).lower())]
            return self._list(req, kind, rows)

    @route("GET", r"/api/v1/(?P<kind>clients|invoices|payments|webhooks)/(?P<id>[^/]+)")
    def get_entity(self, req):
        with self._state_lock:
            entity, err = self._get(req.match.group("kind"), req.match.group("id"))
            return err or json_response({"data": _copy(entity)})

    @route("DELETE", r"/api/v1/(?P<kind>clients|invoices|payments|webhooks)/(?P<id>[^/]+)")
    def delete_entity(self, req):
        with self._state_lock:
            entity, err = self._get(req.match.group("kind"), req.match.group("id"))
            if not err:
                entity.update(is_deleted=True, archived_at=entity["archived_at"] or int(time.time()), updated_at=int(time.time()))
            return err or json_response({"data": _copy(entity)})

    # -- clients -----------------------------------------------------------------------------------

    def _client_errors(self, body, current=None):
        contacts = body.get("contacts") or []
        emails = [c.get("email") for c in contacts if isinstance(c, dict) and c.get("email")]
        for i, email in enumerate(emails):
            if not _EMAIL.match(email):
                return _invalid(**{f"contacts__{i}__email": f"The contacts.{i}.email must be a valid email address."})
            if emails.index(email) != i:
                return _invalid(**{f"contacts__{i}__email": f"The contacts.{i}.email field has a duplicate value."})
        for field in ("id_number", "number"):
            if body.get(field) and any(c[field] == body[field] and c is not current for c in self.store["clients"].values()):
                return _invalid(**{field: f"The {field.replace('_', ' ')} has already been taken."})
        if body.get("country_id") not in (None, "") and not (str(body["country_id"]).isdigit() and 4 <= int(body["country_id"]) <= 894):
            return _invalid(country_id="The selected country id is invalid.")
        if body.get("classification") and body["classification"] not in CLASSIFICATIONS:
            return _invalid(classification="The selected classification is invalid.")
        return None

    def _set_contacts(self, client, contacts):
        old = {c["id"]: c for c in client.get("contacts", [])}
        client["contacts"] = []
        for i, data in enumerate(contacts):
            contact = old.get(data.get("id")) or {"id": encode_id(next(self._ids["contacts"])), "contact_key": secrets.token_hex(20)}
            contact.update({k: data.get(k, contact.get(k, "")) for k in ("first_name", "last_name", "email", "phone")},
                           send_email=bool(data.get("send_email", True)), is_primary=i == 0,
                           link=f"{self.url}/client/key_login/{contact['contact_key']}")
            client["contacts"].append(contact)

    @route("POST", r"/api/v1/clients")
    def create_client(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            err = self._client_errors(body)
            if err:
                return err
            fields = {k: body.get(k) or "" for k in ("name", "id_number", "vat_number", "address1", "address2", "city", "state", "postal_code",
                                                     "phone", "website", "private_notes", "public_notes", "custom_value1", "custom_value2",
                                                     "custom_value3", "custom_value4")}
            client = self._new("clients", {**fields, "number": body.get("number") or self._next_number("clients"),
                                           "country_id": str(body.get("country_id") or ""), "classification": body.get("classification") or "",
                                           "balance": 0, "paid_to_date": 0, "credit_balance": 0, "payment_balance": 0, "documents": [],
                                           "gateway_tokens": [], "settings": {"currency_id": "3"}})
            self._set_contacts(client, body.get("contacts") or [{}])
            client["display_name"] = client["name"] or " ".join(filter(None, (client["contacts"][0]["first_name"], client["contacts"][0]["last_name"])))
            return json_response({"data": _copy(client)})

    @route("PUT", r"/api/v1/clients/(?P<id>[^/]+)")
    def update_client(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            client, err = self._get("clients", req.match.group("id"))
            err = err or self._client_errors(body, client)
            if err:
                return err
            client.update({k: v for k, v in body.items() if k in client and k not in ("id", "contacts", "balance", "paid_to_date")},
                          updated_at=int(time.time()))
            if "contacts" in body:  # contacts not sent back are deleted (§3.4)
                self._set_contacts(client, body["contacts"] or [])
            return json_response({"data": _copy(client)})

    # -- invoices ----------------------------------------------------------------------------------

    def _compute(self, invoice):
        total, taxes = 0.0, 0.0
        for line in invoice["line_items"]:
            gross = float(line.get("cost") or 0) * float(line.get("quantity") or 1)
            disc = float(line.get("discount") or 0)
            line_total = gross - (disc if line.get("is_amount_discount") else gross * disc / 100)
            rate = sum(float(line.get(f"tax_rate{i}") or 0) for i in (1, 2, 3))
            tax = line_total - line_total / (1 + rate / 100) if invoice["uses_inclusive_taxes"] else line_total * rate / 100
            gross_line = line_total + (0 if invoice["uses_inclusive_taxes"] else tax)
            line.update(line_total=round(line_total, 2), tax_amount=round(tax, 2), gross_line_total=round(gross_line, 2))
            total, taxes = total + gross_line, taxes + tax
        invoice.update(amount=round(total, 2), total_taxes=round(taxes, 2))
        invoice["balance"] = round(invoice["amount"] - invoice["paid_to_date"], 2) if invoice["status_id"] != "1" else 0

    def _invoice_errors(self, body, current=None):
        if not body.get("client_id") and current is None:
            return _invalid(client_id="The client id field is required.")
        client = self.store["clients"].get(decode_id(body.get("client_id") or (current or {}).get("client_id")))
        if not client or client["is_deleted"]:
            return _invalid(client_id="The selected client id is invalid.")
        if body.get("number") and any(i["number"] == body["number"] and i is not current for i in self.store["invoices"].values()):
            return _invalid(number="The number has already been taken.")
        for field in ("date", "due_date"):
            if body.get(field) and not re.fullmatch(r"\d{4}-\d\d-\d\d", str(body[field])):
                return _invalid(**{field: f"The {field.replace('_', ' ')} does not match the format Y-m-d."})
        if "line_items" in body and not isinstance(body["line_items"], list):
            return _invalid(line_items="The line items must be an array.")
        return None

    def _set_status(self, invoice):
        if invoice["status_id"] not in ("1", "5", "6"):
            invoice["status_id"] = "4" if invoice["balance"] <= 0 < invoice["amount"] else "3" if invoice["paid_to_date"] > 0 else "2"

    def _mark_sent(self, invoice):
        if invoice["status_id"] == "1":
            invoice["status_id"] = "2"
            invoice["balance"] = round(invoice["amount"] - invoice["paid_to_date"], 2)
            self._set_status(invoice)

    def _pay(self, invoice, amount, reference=""):
        self._mark_sent(invoice)
        return self._record_payment(invoice["client_id"], amount, [(invoice, amount)], {"transaction_reference": reference, "type_id": "1"})

    @route("POST", r"/api/v1/invoices")
    def create_invoice(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        flag = lambda k: str(req.arg(k, body.get(k, ""))).lower() in ("true", "1")  # noqa: E731
        with self._state_lock:
            err = self._invoice_errors(body)
            if err:
                return err
            fields = {k: body.get(k, "") for k in ("po_number", "date", "due_date", "public_notes", "private_notes", "terms", "footer")}
            invoice = self._new("invoices", {**fields, "client_id": body["client_id"], "number": body.get("number") or self._next_number("invoices"),
                                             "status_id": "1", "paid_to_date": 0, "uses_inclusive_taxes": bool(body.get("uses_inclusive_taxes")),
                                             "line_items": [dict(li) for li in body.get("line_items") or []], "documents": []})
            client = self.store["clients"][decode_id(invoice["client_id"])]
            invoice["invitations"] = [{"id": encode_id(next(self._ids["invitations"])), "key": key, "client_contact_id": c["id"],
                                       "link": f"{self.url}/client/invoice/{key}", "sent_date": "", "viewed_date": "", "opened_date": "",
                                       "email_status": ""} for c, key in ((c, secrets.token_hex(16)) for c in client["contacts"] if c["send_email"])]
            self._compute(invoice)
            if flag("mark_sent") or flag("send_email"):
                self._mark_sent(invoice)
            if flag("paid") and invoice["amount"] > 0:
                self._pay(invoice, invoice["amount"], req.arg("reference", body.get("reference", "")))
            return json_response({"data": _copy(invoice)})

    @route("PUT", r"/api/v1/invoices/(?P<id>[^/]+)")
    def update_invoice(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            invoice, err = self._get("invoices", req.match.group("id"))
            err = err or self._invoice_errors(body, invoice)
            if err:
                return err
            invoice.update({k: v for k, v in body.items() if k in invoice and k not in ("id", "amount", "balance", "paid_to_date", "status_id")},
                           updated_at=int(time.time()))
            self._compute(invoice)
            self._set_status(invoice)
            return json_response({"data": _copy(invoice)})

    def _pdf(self, invoice):
        text = f"%PDF-1.4\n% Invoice Ninja simulator\n% Invoice {invoice['number']} amount {invoice['amount']:.2f}\n%%EOF\n"
        return Response(200, text.encode(), {"Content-Type": "application/pdf", "Content-Disposition": f'attachment; filename="{invoice["number"]}.pdf"'})

    def _action(self, invoice, action):
        now = int(time.time())
        if action == "mark_paid":
            if not invoice["is_deleted"] and invoice["status_id"] != "4" and invoice["amount"] > 0:
                self._mark_sent(invoice)
                self._pay(invoice, invoice["balance"])
        elif action == "mark_sent":
            self._mark_sent(invoice)
        elif action == "cancel":
            # sent or partially paid invoices only (others are skipped): the open balance is dropped, payments stay
            if not invoice["is_deleted"] and invoice["status_id"] in ("2", "3"):
                invoice.update(status_id="5", balance=0)
        elif action in ("email", "send_email"):
            self._mark_sent(invoice)
            for inv in invoice["invitations"]:
                inv["sent_date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        elif action in ("archive", "delete", "restore"):
            invoice.update(archived_at=0 if action == "restore" else invoice["archived_at"] or now,
                           is_deleted=action == "delete" or (invoice["is_deleted"] and action != "restore"))
        else:
            return False
        invoice["updated_at"] = now
        return True

    @route("GET", r"/api/v1/invoices/(?P<id>[^/]+)/(?P<action>[a-z_]+)")
    def invoice_action(self, req):
        with self._state_lock:
            invoice, err = self._get("invoices", req.match.group("id"))
            if err or req.match.group("action") == "download":
                return err or self._pdf(invoice)
            if not self._action(invoice, req.match.group("action")):
                return _msg(f"The requested action `{req.match.group('action')}` is not available.", 400)
            return json_response({"data": _copy(invoice)})

    @route("GET", r"/api/v1/invoice/(?P<key>[^/]+)/download")
    def invitation_download(self, req):
        with self._state_lock:
            invoice = next((i for i in self.store["invoices"].values() if any(v["key"] == req.match.group("key") for v in i["invitations"])), None)
            return self._pdf(invoice) if invoice else _msg("No query results for model [App\\Models\\InvoiceInvitation].", 400)

    @route("POST", r"/api/v1/invoices/bulk")
    def bulk_invoices(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            invoices = [self.store["invoices"][n] for n in map(decode_id, body.get("ids") or []) if n in self.store["invoices"]]
            if not invoices:
                return _msg("No Invoices Found", 200)
            if body.get("action") in ("download", "bulk_download"):
                return self._pdf(invoices[0])
            for invoice in invoices:
                if not self._action(invoice, body.get("action")):
                    return _msg(f"The requested action `{body.get('action')}` is not available.", 400)
            return json_response({"data": [_copy(i) for i in invoices]})

    # -- payments ----------------------------------------------------------------------------------

    def _record_payment(self, client_id, amount, allocations, body):
        client = self.store["clients"][decode_id(client_id)]
        payment = self._new("payments", {"number": body.get("number") or self._next_number("payments"), "client_id": client_id, "amount": amount,
                                         "applied": round(sum(a for _, a in allocations), 2), "refunded": 0, "status_id": "4", "is_manual": True,
                                         "transaction_reference": body.get("transaction_reference") or "", "type_id": str(body.get("type_id") or "1"),
                                         "date": body.get("date") or datetime.date.today().isoformat(), "private_notes": body.get("private_notes") or "",
                                         "idempotency_key": body.get("idempotency_key"), "paymentables": [],
                                         "currency_id": str(body.get("currency_id") or client["settings"].get("currency_id") or "")})
        for invoice, part in allocations:
            self._mark_sent(invoice)
            invoice.update(balance=round(invoice["balance"] - part, 2), paid_to_date=round(invoice["paid_to_date"] + part, 2), updated_at=int(time.time()))
            self._set_status(invoice)
            payment["paymentables"].append({"id": encode_id(next(self._ids["paymentables"])), "invoice_id": invoice["id"], "amount": part,
                                            "refunded": 0, "created_at": payment["created_at"], "updated_at": payment["created_at"], "archived_at": 0})
        client.update(paid_to_date=round(client["paid_to_date"] + amount, 2), balance=round(client["balance"] - payment["applied"], 2))
        return payment

    @route("POST", r"/api/v1/payments")
    def create_payment(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            client = self.store["clients"].get(decode_id(body.get("client_id")))
            if not client or client["is_deleted"]:
                return _invalid(client_id="The client id field is required." if not body.get("client_id") else "The selected client id is invalid.")
            key = body.get("idempotency_key")
            if key and len(str(key)) > 64:
                return _invalid(idempotency_key="The idempotency key may not be greater than 64 characters.")
            if key and any(p["idempotency_key"] == key for p in self.store["payments"].values()):
                return _invalid(idempotency_key="The idempotency key has already been taken.")
            if body.get("number") and any(p["number"] == body["number"] for p in self.store["payments"].values()):
                return _invalid(number="The number has already been taken.")
            allocations = []
            for i, row in enumerate(body.get("invoices") or []):
                invoice = self.store["invoices"].get(decode_id(row.get("invoice_id")))
                if not invoice or invoice["client_id"] != body["client_id"] or invoice["is_deleted"] or invoice["status_id"] in ("4", "5", "6"):
                    return _invalid(**{f"invoices__{i}__invoice_id": f"The selected invoices.{i}.invoice_id is invalid."})
                if "amount" not in row:
                    return _invalid(**{f"invoices__{i}__amount": f"The invoices.{i}.amount field is required."})
                allocations.append((invoice, round(float(row["amount"]), 2)))
            amount = round(float(body.get("amount") or sum(a for _, a in allocations)), 2)
            if sum(a for _, a in allocations) > amount + 0.001:
                return _invalid(amount="Amount entered is less than the total applied to invoices.")
            now = time.time()
            self._recent_payments = [r for r in self._recent_payments if now - r[0] < self.duplicate_window]
            signature = (req.header("X-Forwarded-For") or "127.0.0.1", amount, body["client_id"])
            if any(r[1] == signature for r in self._recent_payments):
                return _msg("Duplicate request", 400)
            self._recent_payments.append((now, signature))
            return json_response({"data": _copy(self._record_payment(body["client_id"], amount, allocations, body))})

    @route("POST", r"/api/v1/payments/refund")
    def refund_payment(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            payment = self.store["payments"].get(decode_id(body.get("id")))
            if not payment:
                return _invalid(id="The selected id is invalid.")
            if not body.get("date"):
                return _invalid(date="The date field is required.")
            amount = round(float(body.get("amount") or 0), 2)
            if amount <= 0 or amount > payment["amount"] - payment["refunded"] + 0.001:
                return _invalid(amount="Attempting to refund more than allowed, or amount is zero.")
            for i, row in enumerate(body.get("invoices") or []):
                line = next((p for p in payment["paymentables"] if p["invoice_id"] == row.get("invoice_id")), None)
                part = round(float(row.get("amount") or 0), 2)
                if not line or part <= 0 or part > line["amount"] - line["refunded"] + 0.001:
                    return _invalid(**{f"invoices__{i}__amount": "Attempting to refund more than is refundable for this invoice."})
                invoice = self.store["invoices"][decode_id(line["invoice_id"])]
                line["refunded"] = round(line["refunded"] + part, 2)
                invoice.update(balance=round(invoice["balance"] + part, 2), paid_to_date=round(invoice["paid_to_date"] - part, 2))
                invoice["status_id"] = "2" if invoice["status_id"] == "4" else invoice["status_id"]
                self._set_status(invoice)
            payment["refunded"] = round(payment["refunded"] + amount, 2)
            payment.update(status_id="6" if payment["refunded"] >= payment["amount"] else "5", updated_at=int(time.time()))
            return json_response({"data": _copy(payment)})

    # -- webhooks (§3.7) ---------------------------------------------------------------------------

    @route("POST", r"/api/v1/webhooks")
    def create_webhook(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        if not re.match(r"^https?://", str(body.get("target_url") or "")):
            return _invalid(target_url="The target url must be a valid URL.")
        if not body.get("event_id"):
            return _invalid(event_id="The event id field is required.")
        if body.get("rest_method", "post") not in ("post", "put"):
            return _invalid(rest_method="The selected rest method is invalid.")
        with self._state_lock:
            hook = self._new("webhooks", {"company_id": encode_id(1), "target_url": body["target_url"], "event_id": str(body["event_id"]),
                                          "format": body.get("format") or "JSON", "rest_method": body.get("rest_method") or "post",
                                          "headers": body.get("headers") or {}})
            return json_response({"data": _copy(hook)})

    def entity_payload(self, kind, hashed_id):
        """The bare entity Invoice Ninja posts: invoices include ``client``, payments ``invoices`` and ``client``."""
        with self._state_lock:
            entity = _copy(self.store[kind][decode_id(hashed_id)])
            if kind in ("invoices", "payments"):
                entity["client"] = _copy(self.store["clients"][decode_id(entity["client_id"])])
            if kind == "payments":
                entity["invoices"] = [_copy(self.store["invoices"][decode_id(p["invoice_id"])]) for p in entity["paymentables"]]
            return entity

    def send_webhook(self, url, kind, hashed_id, *, headers=None, method="POST", timeout=10.0):
        body = json.dumps(self.entity_payload(kind, hashed_id)).encode()
        return deliver(url, body, {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}, method=method, timeout=timeout)

    def fire(self, event_id, kind, hashed_id):
        """Deliver to every live subscription for ``event_id``; a 404/405/410 answer deletes the subscription."""
        with self._state_lock:
            hooks = [h for h in self.store["webhooks"].values() if h["event_id"] == str(event_id) and not h["is_deleted"] and not h["archived_at"]]
        deliveries = []
        for hook in hooks:
            d = self.send_webhook(hook["target_url"], kind, hashed_id, headers=hook["headers"], method=hook["rest_method"].upper())
            if d.status in (404, 405, 410):
                with self._state_lock:
                    hook["is_deleted"] = True
            deliveries.append(d)
        return deliveries
