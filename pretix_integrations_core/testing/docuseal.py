"""
Fake DocuSeal API, after ``shared/docs/crm-apis.md`` §2 and the checklist in §6.2/§6.3.

- Base path configurable: ``base_path="/"`` (cloud, ``https://api.docuseal.com/submissions``) or ``"/api"``
  (self-hosted, ``https://<host>/api/submissions``) (§2.1). Anything outside the base path is a 404.
- ``X-Auth-Token: <api key>`` on every call: 401 ``{"error": "Not authenticated"}`` otherwise. An optional
  ``testing_api_key`` models the cloud's separate testing account: a submission created with one key is a
  403 with the "testing API key" hint for the other (§2.1, §2.2).
- ``POST /submissions`` (§2.3): validation errors as 422 ``{"error": "…"}`` (``template_id is required``,
  ``Template not found``, ``Template has been archived``, ``submitters must be a Array``, ``role must be unique``,
  ``order must be one of preserved, random``, ``JSON parse error: …``, per-submitter messages ending in
  `` in `submitters[i]`.``); ``emails`` as an alternative input. Answers 200 with the array of submitters
  (``embed_src`` = ``<fake url>/s/<slug>``). External ids are **not** unique, as on the real server (§6.1).
- ``GET /submissions`` and ``GET /submissions/{id}`` (§2.4 shape, ``documents`` once completed),
  ``DELETE /submissions/{id}`` (archive, ``?permanently=true`` destroys) -> ``{"id", "archived_at"}``.
- ``GET /submitters?submission_id=&external_id=&…``, ``GET /submitters/{id}``, ``PUT /submitters/{id}``
  (422 once completed or declined).
- ``GET /templates`` and ``GET /templates/{id}``.
- Lists: ``{"data": […], "pagination": {"count", "next", "prev"}}``, ids descending, ``limit`` (default 10,
  max 100), ``after=X`` -> ids < X, ``before=X`` -> ids > X, as the code does (§2.4). Unknown ids: 404 ``{"status": 404}``.

The signing form (§2.3: ``embed_src`` = ``https://<host>/s/<slug>``, served at the host's root, without the API key):
``GET /s/<slug>`` shows a plain page (the submitter is "opened"), ``POST /s/<slug>/sign`` completes it and
``POST /s/<slug>/decline`` declines it. When :attr:`webhook_url` is set, each of these sends the matching signed
``form.*`` webhook (§2.5) to it in the background, as DocuSeal does after the signer's action.

Test helpers: :meth:`add_template`, :meth:`open_submitter`, :meth:`complete_submitter`, :meth:`decline_submitter`,
:meth:`event_data`, :meth:`build_webhook` / :meth:`send_webhook` (§2.5: ``{"event_type", "timestamp", "data"}``,
the custom secret header and ``X-Docuseal-Signature: <unix ts>.<hex>``, with knobs for a stale timestamp, a wrong
key, a missing signature or a missing/wrong custom header; ``hmac_secret=None`` is a pre-2026-05 instance).
"""
import dataclasses
import datetime
import html
import itertools
import json
import re
import secrets
import threading
import time

from ..webhooks import sign
from .fakeserver import FakeServer, deliver, json_response, route, text_response

DEMO_API_KEY = "demo-docuseal-api-key"
DEMO_TOKEN = DEMO_API_KEY  # the name demo/simulators.py looks for
DEMO_HMAC_SECRET = "whsec_ZGVtby1kb2N1c2VhbC1obWFjLXNlY3JldDE2"
DEMO_SECRET_HEADER = ("X-Webhook-Secret", "demo-docuseal-header-secret")
DEMO_TEMPLATE_ID = 1000001
SIGNATURE_TOLERANCE = 300
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(message, status=422):
    return json_response({"error": message}, status=status)


def _not_found():
    return json_response({"status": 404}, status=404)


class FakeDocuSeal(FakeServer):
    label = "DocuSeal simulator (not the real DocuSeal)"

    def __init__(self, *args, api_key=DEMO_API_KEY, testing_api_key=None, hmac_secret=DEMO_HMAC_SECRET, secret_header=DEMO_SECRET_HEADER,
                 base_path="/", seed=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.api_key, self.testing_api_key, self.hmac_secret, self.secret_header = api_key, testing_api_key, hmac_secret, secret_header
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.templates, self.submissions, self.submitters = {}, {}, {}
        self._ids = {"template": itertools.count(DEMO_TEMPLATE_ID), "submission": itertools.count(5001), "submitter": itertools.count(7001),
                     "event": itertools.count(9001)}
        self._state_lock = threading.RLock()
        #: where the ``form.*`` webhooks of the signing page go (None: nowhere); the demo points it at pretix
        self.webhook_url = None
        self.webhook_deliveries = []
        if seed:
            self.add_template("Workshop participation agreement", roles=("First Party",), fields=("Full Name", "Ticket", "Signature"),
                              external_id="workshop-agreement")
            self.add_template("Volunteer agreement", roles=("Volunteer", "Organizer"), fields=("Full Name", "Signature"))

    @property
    def api_url(self):
        """What to configure as the base URL in the plugin."""
        return self.url + self.base_path

    def dispatch(self, req):
        if req.path.startswith("/s/"):  # the signer's page: on the host's root, no API key
            return self.signing_page(req)
        if self.base_path:
            if not req.path.startswith(self.base_path + "/"):
                return _not_found()
            req = dataclasses.replace(req, path=req.path[len(self.base_path):])
        key = req.header("X-Auth-Token")
        if not key or key not in (self.api_key, self.testing_api_key):
            return _error("Not authenticated", 401)
        req.testing = key == self.testing_api_key
        return super().dispatch(req)

    def not_found(self, req):
        return _not_found()

    # -- data --------------------------------------------------------------------------------------

    def add_template(self, name, *, roles=("First Party",), fields=("Signature",), external_id=None, archived=False):
        with self._state_lock:
            tid, now = next(self._ids["template"]), _now()
            subs = [{"name": role, "uuid": secrets.token_hex(16)} for role in roles]
            self.templates[tid] = {
                "id": tid, "slug": secrets.token_urlsafe(10), "name": name, "external_id": external_id, "folder_name": "Default",
                "created_at": now, "updated_at": now, "archived_at": now if archived else None, "source": "native", "submitters": subs,
                "fields": [{"name": f, "type": "signature" if f == "Signature" else "text", "required": True, "uuid": secrets.token_hex(16),
                            "submitter_uuid": subs[0]["uuid"]} for f in fields],
                "documents": [{"id": tid, "uuid": secrets.token_hex(16), "url": f"{self.url}/file/{tid}.pdf", "filename": f"{name}.pdf"}]}
            return tid

    def _template_brief(self, tid):
        t = self.templates[tid]
        return {k: t[k] for k in ("id", "name", "external_id", "created_at", "updated_at", "folder_name")}

    def _log(self, submitter, event_type, **data):
        self.submissions[submitter["submission_id"]]["submission_events"].append(
            {"id": next(self._ids["event"]), "submitter_id": submitter["id"], "event_type": event_type, "event_timestamp": _now(), "data": data})

    def _submitter_view(self, sid, with_context=False):
        s = {k: v for k, v in self.submitters[sid].items() if k != "documents"}
        if with_context:
            sub = self.submissions[s["submission_id"]]
            s.update(template=self._template_brief(sub["template_id"]),
                     submission_events=[e for e in sub["submission_events"] if e["submitter_id"] == sid])
        return s

    def _submission_view(self, sub_id):
        sub = self.submissions[sub_id]
        view = {k: v for k, v in sub.items() if k not in ("template_id", "testing", "submitter_ids")}
        view.update(template=self._template_brief(sub["template_id"]),
                    submitters=[{**self._submitter_view(i), "documents": self.submitters[i]["documents"]} for i in sub["submitter_ids"]])
        if sub["status"] != "completed":
            view.pop("documents", None)
        return json.loads(json.dumps(view))

    def _set_status(self, submitter_id, status, event_type, **extra):
        with self._state_lock:
            s = self.submitters[submitter_id]
            if status in ("opened",) and s["status"] in ("completed", "declined"):
                return
            now = _now()
            s.update(status=status, updated_at=now, **{f"{status}_at": now}, **extra)
            self._log(s, event_type)
            sub = self.submissions[s["submission_id"]]
            people = [self.submitters[i] for i in sub["submitter_ids"]]
            if status == "declined":
                sub["status"] = "declined"
            elif all(p["status"] == "completed" for p in people):
                sub.update(status="completed", completed_at=now, audit_log_url=f"{self.url}/file/audit-{sub['id']}.pdf",
                           combined_document_url=f"{self.url}/file/combined-{sub['id']}.pdf",
                           documents=[{"name": sub["name"], "url": f"{self.url}/file/{sub['id']}.pdf"}])
                for p in people:
                    p["documents"] = sub["documents"]

    def open_submitter(self, submitter_id):
        self._set_status(submitter_id, "opened", "view_form")

    def complete_submitter(self, submitter_id, values=None):
        with self._state_lock:
            extra = {"values": [{"field": k, "value": v} for k, v in values.items()]} if values else {}
        self._set_status(submitter_id, "completed", "complete_form", **extra)

    def decline_submitter(self, submitter_id, reason="Not interested"):
        self._set_status(submitter_id, "declined", "decline_form", decline_reason=reason)

    # -- submissions -------------------------------------------------------------------------------

    @route("POST", r"/submissions")
    def create_submission(self, req):
        try:
            body = json.loads(req.body.decode() or "{}")
        except ValueError as e:
            return _error(f"JSON parse error: {e}")
        body = body if isinstance(body, dict) else {}
        if not body.get("template_id"):
            return _error("template_id is required")
        with self._state_lock:
            template = self.templates.get(body["template_id"]) if isinstance(body["template_id"], int) else None
            if not template:
                return _error("Template not found")
            if template["archived_at"]:
                return _error("Template has been archived")
            if not template["fields"]:
                return _error("Template does not contain fields")
            roles = [s["name"] for s in template["submitters"]]
            submitters = body.get("submitters")
            if submitters is None and body.get("emails"):
                emails = [e.strip() for e in str(body["emails"]).split(",") if e.strip()]
                if not all(_EMAIL.match(e) for e in emails):
                    return _error("emails are invalid")
                submitters = [{"email": e} for e in emails]
            if not isinstance(submitters, list) or not submitters:
                return _error("submitters must be a Array")
            order = body.get("order", body.get("submitters_order", "preserved"))
            if order not in ("preserved", "random"):
                return _error("order must be one of preserved, random")
            for i, s in enumerate(submitters):
                where = f" in `submitters[{i}]`."
                if not isinstance(s, dict) or not any(s.get(k) for k in ("email", "phone", "name")):
                    return _error("email, phone or name is required" + where)
                if s.get("email") and not _EMAIL.match(s["email"]):
                    return _error("email is invalid" + where)
                if s.get("role") and s["role"] not in roles:
                    return _error(f"role `{s['role']}` is not defined in the template" + where)
            chosen = [s.get("role") or roles[min(i, len(roles) - 1)] for i, s in enumerate(submitters)]
            if len(set(chosen)) != len(chosen):
                return _error("role must be unique")
            sub_id, now = next(self._ids["submission"]), _now()
            self.submissions[sub_id] = {
                "id": sub_id, "name": template["name"], "slug": secrets.token_urlsafe(10), "source": "api", "submitters_order": order,
                "expire_at": body.get("expire_at"), "created_at": now, "updated_at": now, "archived_at": None, "completed_at": None,
                "status": "pending", "variables": body.get("variables") or {}, "template_id": template["id"], "testing": req.testing,
                "created_by_user": {"id": 1, "email": "admin@example.org", "first_name": "Demo", "last_name": "Admin"},
                "submission_events": [], "audit_log_url": None, "combined_document_url": None, "documents": [], "submitter_ids": []}
            result = []
            for s, role in zip(submitters, chosen):
                send = s.get("send_email", body.get("send_email", True))
                sid, slug = next(self._ids["submitter"]), secrets.token_urlsafe(10)
                self.submitters[sid] = {
                    "id": sid, "submission_id": sub_id, "uuid": secrets.token_hex(16), "slug": slug, "email": s.get("email"),
                    "name": s.get("name"), "phone": s.get("phone"), "external_id": s.get("external_id"), "application_key": s.get("application_key"),
                    "metadata": s.get("metadata") or {}, "status": "sent" if send else "awaiting", "sent_at": now if send else None,
                    "opened_at": None, "completed_at": None, "declined_at": None, "created_at": now, "updated_at": now,
                    "values": [{"field": k, "value": v} for k, v in (s.get("values") or {}).items()],
                    "preferences": {"send_email": bool(send), "send_sms": bool(s.get("send_sms", body.get("send_sms", False)))},
                    "role": role, "embed_src": f"{self.url}/s/{slug}", "documents": []}
                self.submissions[sub_id]["submitter_ids"].append(sid)
                if send:
                    self._log(self.submitters[sid], "send_email")
                if s.get("completed"):
                    self._set_status(sid, "completed", "complete_form")
                result.append(self._submitter_view(sid))
            return json_response(json.loads(json.dumps(result)))

    def _own_submission(self, req, sub_id):
        sub = self.submissions.get(sub_id)
        if not sub:
            return None, _not_found()
        if sub["testing"] != req.testing:
            mine, theirs = ("testing", "production") if req.testing else ("production", "testing")
            return None, _error(f"Submission {sub_id} not found using {mine} API key; Use {theirs} API key to access {theirs} submissions.", 403)
        return sub, None

    @route("GET", r"/submissions/(?P<id>\d+)")
    def get_submission(self, req):
        with self._state_lock:
            sub, err = self._own_submission(req, int(req.match.group("id")))
            return err or json_response(self._submission_view(sub["id"]))

    @route("DELETE", r"/submissions/(?P<id>\d+)")
    def archive_submission(self, req):
        with self._state_lock:
            sub, err = self._own_submission(req, int(req.match.group("id")))
            if err:
                return err
            sub["archived_at"] = sub["archived_at"] or _now()
            if req.arg("permanently") == "true":
                for sid in self.submissions.pop(sub["id"])["submitter_ids"]:
                    self.submitters.pop(sid)
            return json_response({"id": sub["id"], "archived_at": sub["archived_at"]})

    def _page(self, req, rows):
        limit = min(int(req.arg("limit")) if (req.arg("limit") or "").isdigit() else DEFAULT_LIMIT, MAX_LIMIT) or DEFAULT_LIMIT
        after, before = req.arg("after"), req.arg("before")
        rows = sorted(rows, key=lambda r: r["id"], reverse=True)
        if after and after.isdigit():
            rows = [r for r in rows if r["id"] < int(after)]
        if before and before.isdigit():
            rows = [r for r in rows if r["id"] > int(before)][-limit:]
        rows = rows[:limit]
        return json_response({"data": rows, "pagination": {"count": len(rows), "next": rows[-1]["id"] if rows else None,
                                                           "prev": rows[0]["id"] if rows else None}})

    @route("GET", r"/submissions")
    def list_submissions(self, req):
        q, archived = (req.arg("q") or "").lower(), req.arg("archived") == "true"
        with self._state_lock:
            rows = [self._submission_view(i) for i, s in self.submissions.items() if s["testing"] == req.testing and bool(s["archived_at"]) == archived
                    and (not req.arg("template_id") or str(s["template_id"]) == req.arg("template_id"))
                    and (not req.arg("status") or s["status"] == req.arg("status"))]
        rows = [r for r in rows if not q or any(q in (p.get(k) or "").lower() for p in r["submitters"] for k in ("email", "name", "phone"))]
        return self._page(req, rows)

    # -- submitters, templates ---------------------------------------------------------------------

    @route("GET", r"/submitters")
    def list_submitters(self, req):
        filters = {k: req.arg(k) for k in ("submission_id", "external_id", "application_key", "slug") if req.arg(k)}
        q = (req.arg("q") or "").lower()
        with self._state_lock:
            rows = [self._submitter_view(sid, with_context=True) for sid, s in self.submitters.items()
                    if self.submissions[s["submission_id"]]["testing"] == req.testing
                    and all(str(s.get(k)) == v for k, v in filters.items())
                    and (not req.arg("template_id") or str(self.submissions[s["submission_id"]]["template_id"]) == req.arg("template_id"))
                    and (not q or any(q in (s.get(k) or "").lower() for k in ("email", "name", "phone")))]
        return self._page(req, json.loads(json.dumps(rows)))

    @route("GET", r"/submitters/(?P<id>\d+)")
    def get_submitter(self, req):
        with self._state_lock:
            sid = int(req.match.group("id"))
            if sid not in self.submitters:
                return _not_found()
            return json_response(json.loads(json.dumps(self._submitter_view(sid, with_context=True))))

    @route("PUT", r"/submitters/(?P<id>\d+)")
    def update_submitter(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            s = self.submitters.get(int(req.match.group("id")))
            if not s:
                return _not_found()
            if s["status"] in ("completed", "declined"):
                return _error(f"Submitter has already {s['status']} the submission.")
            s.update({k: body[k] for k in ("email", "name", "phone", "external_id", "metadata") if k in body}, updated_at=_now())
            if isinstance(body.get("values"), dict):
                s["values"] = [{"field": k, "value": v} for k, v in body["values"].items()]
            if body.get("completed"):
                self._set_status(s["id"], "completed", "complete_form")
            return json_response(json.loads(json.dumps(self._submitter_view(s["id"]))))

    @route("GET", r"/templates")
    def list_templates(self, req):
        archived, q = req.arg("archived") == "true", (req.arg("q") or "").lower()
        with self._state_lock:
            filters = {f: req.arg(k) for k, f in (("slug", "slug"), ("external_id", "external_id"), ("folder", "folder_name")) if req.arg(k)}
            rows = [t for t in self.templates.values() if bool(t["archived_at"]) == archived and (not q or q in t["name"].lower())
                    and all(str(t[f]) == v for f, v in filters.items())]
        return self._page(req, json.loads(json.dumps(rows)))

    @route("GET", r"/templates/(?P<id>\d+)")
    def get_template(self, req):
        template = self.templates.get(int(req.match.group("id")))
        return json_response(template) if template else _not_found()

    # -- the signer's page (§2.3 embed_src) ---------------------------------------------------------------

    def signing_page(self, req):
        m = re.fullmatch(r"/s/(?P<slug>[A-Za-z0-9_-]+)(?:/(?P<action>sign|decline))?/?", req.path)
        with self._state_lock:
            sid = next((i for i, s in self.submitters.items() if m and s["slug"] == m.group("slug")), None)
            if sid is None:
                return text_response("Not found", status=404)
            action = m.group("action")
            if req.method == "GET" and not action:
                if self.submitters[sid]["status"] in ("sent", "awaiting"):
                    self.open_submitter(sid)
                    self._notify("form.viewed", sid)
            elif req.method == "POST" and action == "sign":
                if self.submitters[sid]["status"] not in ("completed", "declined"):
                    self.complete_submitter(sid)
                    self._notify("form.completed", sid)
            elif req.method == "POST" and action == "decline":
                if self.submitters[sid]["status"] not in ("completed", "declined"):
                    self.decline_submitter(sid, reason="Declined on the simulator's page")
                    self._notify("form.declined", sid)
            else:
                return text_response("Method not allowed", status=405)
            s = self.submitters[sid]
            sub = self.submissions[s["submission_id"]]
        name = html.escape(s.get("name") or s.get("email") or "")
        if s["status"] in ("completed", "declined"):
            body = f"<p>{html.escape(s['status'].capitalize())}.</p>"
        else:
            base = f"/s/{s['slug']}"
            body = (f'<form method="post" action="{base}/sign"><button type="submit">Sign</button></form>'
                    f'<form method="post" action="{base}/decline"><button type="submit">Decline</button></form>')
        page = (f"<!DOCTYPE html><html><head><title>{html.escape(self.label)}</title></head><body>"
                f"<p><strong>{html.escape(self.label)}</strong></p><h1>{html.escape(sub['name'])}</h1><p>{name}</p>{body}</body></html>")
        return text_response(page, content_type="text/html; charset=utf-8")

    def _notify(self, event_type, submitter_id):
        url = self.webhook_url
        if not url:
            return
        body, headers = self.build_webhook(event_type, self.event_data(event_type, submitter_id))

        def send():
            self.webhook_deliveries.append(deliver(url, body, headers))
        threading.Thread(target=send, daemon=True).start()

    # -- webhooks (§2.5) ---------------------------------------------------------------------------

    def event_data(self, event_type, obj_id):
        """The ``data`` DocuSeal sends for ``event_type`` about a submitter (form.*), submission or template id."""
        with self._state_lock:
            if event_type.startswith("form."):
                s = self._submitter_view(obj_id)
                sub = self.submissions[s["submission_id"]]
                return json.loads(json.dumps({
                    **s, "ua": "Mozilla/5.0", "ip": "203.0.113.7", "decline_reason": s.get("decline_reason"),
                    "documents": self.submitters[obj_id]["documents"], "audit_log_url": sub["audit_log_url"],
                    "submission_url": f"{self.url}/e/{sub['slug']}", "template": self._template_brief(sub["template_id"]),
                    "submission": {"id": sub["id"], "audit_log_url": sub["audit_log_url"], "combined_document_url": sub["combined_document_url"],
                                   "status": sub["status"], "url": f"{self.url}/e/{sub['slug']}", "variables": sub["variables"],
                                   "created_at": sub["created_at"]}}))
            if event_type.endswith(".archived"):
                obj = (self.templates if event_type.startswith("template.") else self.submissions)[obj_id]
                return {"id": obj_id, "archived_at": obj["archived_at"] or _now()}
            if event_type.startswith("template."):
                return json.loads(json.dumps(self.templates[obj_id]))
            return self._submission_view(obj_id)

    def build_webhook(self, event_type, data, *, timestamp=None, hmac_secret=None, secret_header=None, stale=False, wrong_key=False,
                      omit_signature=False, omit_secret_header=False, wrong_secret_header=False):
        """``(body bytes, headers)`` of one delivery; the knobs produce requests a receiver must refuse."""
        event_time = timestamp or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"event_type": event_type, "timestamp": event_time, "data": data}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "DocuSeal.com Webhook"}
        name, value = secret_header or self.secret_header or (None, None)
        if name and not omit_secret_header:
            headers[name] = value + ("-wrong" if wrong_secret_header else "")
        secret = hmac_secret or self.hmac_secret
        if secret and not omit_signature and (not name or name.lower() != "x-docuseal-signature"):
            ts = int(time.time() - (SIGNATURE_TOLERANCE + 120 if stale else 0))
            headers["X-Docuseal-Signature"] = f"{ts}.{sign(secret + ('-wrong' if wrong_key else ''), body, timestamp=ts)}"
        return body, headers

    def send_webhook(self, url, event_type, obj_id, *, timeout=10.0, **knobs):
        """POST one event about ``obj_id`` (see :meth:`event_data`) to ``url``; returns the :class:`Delivery`."""
        body, headers = self.build_webhook(event_type, self.event_data(event_type, obj_id), **knobs)
        return deliver(url, body, headers, timeout=timeout)
