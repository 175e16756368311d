"""
Fake Mautic 5 REST API, after ``shared/docs/crm-apis.md`` §4 and the checklist in §6.2/§6.3.

- Auth (§4.1): HTTP Basic (403 ``access_denied`` when ``basic_auth_enabled=False``) or OAuth2
  ``client_credentials`` at ``POST /oauth/v2/token`` (form-encoded; bad client -> 400 ``invalid_client``; no
  refresh token), then ``Authorization: Bearer`` (401 ``invalid_grant``, "…is invalid." / "…has expired.").
  ``api_enabled=False`` makes every ``/api`` call a 403 ``api_disabled``.
- Errors (§4.2): ``{"errors": [{"code", "message", "details", "type"}]}`` with the HTTP status = code. Optional
  hourly rate limit (``rate_limit=N``): ``X-RateLimit-Limit/Remaining/Reset`` headers and 429.
- Contacts (§4.3): ``POST /api/contacts/new`` upserts on email (201 + ``Location`` when new, 200 when an existing
  contact is updated); tags as a list or comma string, ``-tag`` removes; ``overwriteWithBlank``; custom fields by
  alias (unknown aliases are ignored); ``GET /api/contacts/{id}``; ``PATCH``/``PUT /api/contacts/{id}/edit``
  (PATCH 404 when missing; PUT creates, and clears the fields it is not given); ``DELETE …/delete``;
  ``GET /api/contacts`` with ``search=email:…`` or free text, ``where[i][col|expr|val]`` (eq, neq, like),
  ``start``/``limit`` (default 30) -> ``{"total": "<n>", "contacts": {id: contact}}`` (``[]`` when empty);
  ``POST /api/contacts/batch/new`` (max 200, else 500) with ``statusCodes`` and per-index ``errors``;
  ``GET /api/contacts/list/fields``; do-not-contact add/remove.
- Segments, campaigns, stages (§4.4): ``POST /api/{segments|campaigns|stages}/{id}/contact/{cid}/add|remove`` ->
  ``{"success": 1}`` (404 for an unknown one); ``POST /api/segments/{id}/contacts/add`` with ``{"ids": […]}``;
  ``GET /api/segments`` -> ``{"total", "lists"}``.
- Points ``POST /api/contacts/{id}/points/{plus|minus|times|divide}/{delta}``; notes ``POST /api/notes/new``
  (400 "lead ID is mandatory") and ``GET /api/contacts/{id}/notes?search=``; companies ``POST /api/companies/new``
  (deduped on name) and ``POST /api/companies/{id}/contact/{cid}/add``. Points and notes are not idempotent.

Test helpers: :meth:`webhook_entry`, :meth:`build_webhook` / :meth:`send_webhook` (§4.5: body grouped by event key,
``X-Origin-Base-URL``, ``Webhook-Signature`` = base64 HMAC-SHA256 of the body; knobs for a wrong key or a missing
signature).
"""
import datetime
import html
import itertools
import json
import re
import secrets
import threading
import time

from ..webhooks import BASE64, sign
from .fakeserver import FakeServer, deliver, json_response, route, text_response

DEMO_USERNAME = "demo-mautic-api"
DEMO_PASSWORD = "demo-mautic-password"
DEMO_CLIENT_ID = "demo-mautic-client-id"
DEMO_CLIENT_SECRET = "demo-mautic-client-secret"
DEMO_WEBHOOK_SECRET = "demo-mautic-webhook-secret"
BATCH_LIMIT = 200
CORE_FIELDS = ("title", "firstname", "lastname", "company", "position", "email", "mobile", "phone", "address1", "address2", "city", "state",
               "zipcode", "country", "preferred_locale", "timezone", "website")
SOCIAL_FIELDS = ("facebook", "twitter", "linkedin")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _error(code, message, details=None, type_=None, headers=None):
    return json_response({"errors": [{"code": code, "message": message, "details": details if details is not None else [], "type": type_}]},
                         status=code, headers=headers)


def _not_found():
    return _error(404, "Item was not found.")


class FakeMautic(FakeServer):
    label = "Mautic simulator (not the real Mautic)"
    log_name = "Mautic simulator"

    def __init__(self, *args, username=DEMO_USERNAME, password=DEMO_PASSWORD, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET,
                 webhook_secret=DEMO_WEBHOOK_SECRET, api_enabled=True, basic_auth_enabled=True, rate_limit=0, token_lifetime=3600,
                 custom_fields=("pretix_last_order", "pretix_events"), **kwargs):
        super().__init__(*args, **kwargs)
        self.username, self.password, self.client_id, self.client_secret = username, password, client_id, client_secret
        self.webhook_secret, self.api_enabled, self.basic_auth_enabled = webhook_secret, api_enabled, basic_auth_enabled
        self.rate_limit, self.token_lifetime = rate_limit, token_lifetime
        self.fields = {alias: "social" if alias in SOCIAL_FIELDS else "core" for alias in (*CORE_FIELDS, *SOCIAL_FIELDS, *custom_fields)}
        self.contacts, self.companies, self.notes, self.tokens = {}, {}, {}, {}
        self.segments = {1: {"id": 1, "name": "pretix buyers", "alias": "pretix-buyers", "members": set()},
                         2: {"id": 2, "name": "Newsletter", "alias": "newsletter", "members": set()}}
        self.campaigns = {1: {"id": 1, "name": "Welcome", "members": set()}}
        self.stages = {1: {"id": 1, "name": "Lead", "weight": 0}, 2: {"id": 2, "name": "Customer", "weight": 10}}
        self.point_log = []  # (contact id, operator, delta, eventName, actionName): points are not idempotent
        self._ids = {k: itertools.count(1) for k in ("contact", "company", "note", "tag", "dnc")}
        self._tag_ids, self._window = {}, [time.time(), 0]
        self._state_lock = threading.RLock()

    # -- auth --------------------------------------------------------------------------------------

    @route("POST", r"/oauth/v2/token")
    def token(self, req):
        form = req.form
        client_id, secret = req.basic_auth or (form.get("client_id"), form.get("client_secret"))
        if form.get("grant_type") != "client_credentials":
            return _error(400, "The grant type is unauthorized for this client_id", type_="unauthorized_client")
        if (client_id, secret) != (self.client_id, self.client_secret):
            return _error(400, "The client credentials are invalid", type_="invalid_client")
        token = secrets.token_urlsafe(32)
        with self._state_lock:
            self.tokens[token] = time.time() + self.token_lifetime
        return json_response({"access_token": token, "expires_in": self.token_lifetime, "token_type": "bearer", "scope": None})

    def expire_tokens(self):
        with self._state_lock:
            self.tokens = dict.fromkeys(self.tokens, 0)

    def dispatch(self, req):
        if not req.path.startswith("/api/"):
            return super().dispatch(req)
        if not self.api_enabled:
            return _error(403, "API disabled. You need to enable the API in the API settings of Mautic's Configuration.", type_="api_disabled")
        if req.basic_auth is not None:
            if not self.basic_auth_enabled:
                return _error(403, "Basic Auth disabled. You need to enable HTTP basic auth in the API settings of Mautic's Configuration.",
                              type_="access_denied")
            if req.basic_auth != (self.username, self.password):
                return _error(401, "Authorization denied: invalid username or password.", type_="access_denied")
        elif req.bearer:
            with self._state_lock:
                expires_at = self.tokens.get(req.bearer)
            if not expires_at or expires_at < time.time():
                return _error(401, "The access token provided " + ("has expired." if expires_at is not None else "is invalid."), type_="invalid_grant")
        else:
            return _error(401, "API authorization denied.", type_="access_denied")
        headers = {}
        if self.rate_limit:
            with self._state_lock:
                if time.time() - self._window[0] >= 3600:
                    self._window = [time.time(), 0]
                self._window[1] += 1
                used, reset = self._window[1], int(self._window[0] + 3600)
            headers = {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
                       "X-RateLimit-Reset": str(reset)}
            if used > self.rate_limit:
                return _error(429, f"You exceeded the rate limit of {self.rate_limit} API calls per hour.", headers=headers)
        resp = super().dispatch(req)
        resp.headers.update(headers)
        return resp

    def not_found(self, req):
        return _not_found()

    # -- what a person sees (the demo): the contact page the CRM bridge links to, the console lines ---------------

    @route("GET", r"/s/contacts/view/(?P<id>\d+)")
    def contact_page(self, req):
        """A plain page standing for Mautic's contact view (the order page links to it)."""
        with self._state_lock:
            c = self.contacts.get(int(req.match.group("id")))
            if c is None:
                return text_response("<h1>Contact not found</h1>", status=404, content_type="text/html; charset=utf-8")
            segments = [s["name"] for s in self.segments.values() if c["id"] in s["members"]]
            campaigns = [k["name"] for k in self.campaigns.values() if c["id"] in k["members"]]
            rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in c["values"].items() if v)
            tags = ", ".join(str(t) for t in c["tags"])
        return text_response(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.label)}</title></head><body>"
            f"<p><b>{html.escape(self.label)}</b></p><h1>Contact #{c['id']}</h1><table>{rows}</table>"
            f"<p>Tags: {html.escape(tags)}</p><p>Segments: {html.escape(', '.join(segments) or '-')}</p>"
            f"<p>Campaigns: {html.escape(', '.join(campaigns) or '-')}</p></body></html>", content_type="text/html; charset=utf-8")

    def describe(self, req, resp):
        """The demo console shows every contact write and every segment or campaign change this simulator receives."""
        if req.method != "POST" or not req.path.startswith("/api/"):
            return None
        try:
            data = json.loads(resp.body or b"null")
        except ValueError:
            data = None
        if req.path == "/api/contacts/new":
            body = req.json if isinstance(req.json, dict) else {}
            if resp.status in (200, 201) and isinstance(data, dict):
                what = "created" if resp.status == 201 else "updated"
                return f"contact #{data['contact']['id']} {what}: {body.get('email')} ({self.url}/s/contacts/view/{data['contact']['id']})"
            return f"contact {body.get('email')} refused ({resp.status})"
        m = re.fullmatch(r"/api/(segments|campaigns)/(\d+)/contact/(\d+)/(add|remove)", req.path)
        if m:
            kind, oid, cid, action = m.groups()
            store = self.segments if kind == "segments" else self.campaigns
            name = (store.get(int(oid)) or {}).get("name", f"#{oid}")
            return f"contact #{cid} {'added to' if action == 'add' else 'removed from'} {kind[:-1]} '{name}' ({resp.status})"
        return None

    # -- contacts ----------------------------------------------------------------------------------

    def _view(self, c):
        groups = {"core": {}, "social": {}, "personal": {}, "professional": {}}
        for n, (alias, group) in enumerate(self.fields.items(), start=1):
            value = c["values"].get(alias)
            groups[group][alias] = {"id": str(n), "label": alias.replace("_", " ").title(), "alias": alias, "type": "email" if alias == "email" else "text",
                                    "group": group, "object": "lead", "is_fixed": "1" if alias in CORE_FIELDS else "0", "properties": [],
                                    "value": value, "normalizedValue": value}
        stage = self.stages.get(c["stage"])
        return json.loads(json.dumps({
            "id": c["id"], "isPublished": True, "dateAdded": c["dateAdded"], "dateModified": c["dateModified"], "createdBy": 1, "createdByUser": "API",
            "points": c["points"], "color": None, "lastActive": c["lastActive"], "owner": {"id": c["owner"]} if c["owner"] else None,
            "stage": {k: stage[k] for k in ("id", "name", "weight")} if stage else None, "dateIdentified": c["dateAdded"],
            "preferredProfileImage": "gravatar", "fields": {**groups, "all": {"id": c["id"], **{a: c["values"].get(a) for a in self.fields}}},
            "tags": [{"id": self._tag_ids[t], "tag": t} for t in c["tags"]], "utmtags": [], "ipAddresses": c["ipAddresses"] or [],
            "doNotContact": c["dnc"], "frequencyRules": []}))

    def _find_by_email(self, email):
        return next((c for c in self.contacts.values() if email and (c["values"].get("email") or "").lower() == email.lower()), None)

    def _apply(self, c, body, overwrite_blank):
        """Write a request body into contact ``c``; returns an error response or None."""
        if body.get("email") and not _EMAIL.match(str(body["email"])):
            return _error(400, "email: A valid email is required.", details={"email": ["A valid email is required."]})
        for alias in self.fields:
            if alias in body and (overwrite_blank or body[alias] not in (None, "")):
                c["values"][alias] = body[alias]
        tags = body.get("tags") or []
        for tag in (tags.split(",") if isinstance(tags, str) else tags):
            tag = str(tag).strip()
            if tag.startswith("-"):
                c["tags"] = [t for t in c["tags"] if t != tag[1:]]
            elif tag and tag not in c["tags"]:
                self._tag_ids.setdefault(tag, next(self._ids["tag"]))
                c["tags"].append(tag)
        if body.get("stage") in self.stages or str(body.get("stage", "")).isdigit() and int(body["stage"]) in self.stages:
            c["stage"] = int(body["stage"])
        for dnc in body.get("doNotContact") or []:
            c["dnc"].append({"id": next(self._ids["dnc"]), "reason": dnc.get("reason", 3), "comments": dnc.get("comments", ""),
                             "channel": dnc.get("channel", "email"), "channelId": None})
        if body.get("ipAddress"):
            c["ipAddresses"][body["ipAddress"]] = {"ipAddress": body["ipAddress"]}
        c["owner"] = body.get("owner", c["owner"])
        c["lastActive"] = body.get("lastActive", c["lastActive"])
        c["dateModified"] = _now()
        return None

    def _blank(self, contact_id=None):
        cid = contact_id or next(self._ids["contact"])
        return {"id": cid, "values": {}, "tags": [], "points": 0, "stage": None, "owner": None, "lastActive": None, "dnc": [], "ipAddresses": {},
                "dateAdded": _now(), "dateModified": None}

    def _upsert(self, body):
        """``/contacts/new`` semantics: (status, contact view) or (error response, None)."""
        if not isinstance(body, dict):
            return _error(400, "Request body must be a JSON object."), None
        with self._state_lock:
            existing = self._find_by_email(body.get("email"))
            c = existing or self._blank()
            err = self._apply(c, body, overwrite_blank=bool(body.get("overwriteWithBlank", False)))
            if err:
                return err, None
            if not existing:
                self.contacts[c["id"]] = c
            return (200 if existing else 201), self._view(c)

    @route("POST", r"/api/contacts/new")
    def new_contact(self, req):
        status, view = self._upsert(req.json)
        if view is None:
            return status
        headers = {"Location": f"{self.url}/api/contacts/{view['id']}"} if status == 201 else {}
        return json_response({"contact": view}, status=status, headers=headers)

    @route("POST", r"/api/contacts/batch/new")
    def batch_new(self, req):
        items = req.json if isinstance(req.json, list) else []
        if len(items) > BATCH_LIMIT:
            return _error(500, f"A max of {BATCH_LIMIT} entities are supported at a time.")
        contacts, codes, errors = [], [], {}
        for i, item in enumerate(items):
            status, view = self._upsert(item)
            if view is None:
                err = json.loads(status.body)["errors"][0]
                errors[str(i)] = {"message": err["message"], "code": err["code"], "type": "api"}
                codes.append(err["code"])
            else:
                contacts.append(view)
                codes.append(status)
        return json_response({"contacts": contacts, "statusCodes": codes, **({"errors": errors} if errors else {})}, status=201)

    @route("GET", r"/api/contacts/(?P<id>\d+)")
    def get_contact(self, req):
        with self._state_lock:
            c = self.contacts.get(int(req.match.group("id")))
            return json_response({"contact": self._view(c)}) if c else _not_found()

    @route("PATCH", r"/api/contacts/(?P<id>\d+)/edit")
    def patch_contact(self, req):
        with self._state_lock:
            c = self.contacts.get(int(req.match.group("id")))
            if not c:
                return _not_found()
            body = req.json if isinstance(req.json, dict) else {}
            return self._apply(c, body, overwrite_blank=bool(body.get("overwriteWithBlank", False))) or json_response({"contact": self._view(c)})

    @route("PUT", r"/api/contacts/(?P<id>\d+)/edit")
    def put_contact(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            cid = int(req.match.group("id"))
            old = self.contacts.get(cid)
            c = self._blank(cid)
            if old:
                c.update(dateAdded=old["dateAdded"], points=old["points"], tags=old["tags"], dnc=old["dnc"])
            err = self._apply(c, body, overwrite_blank=bool(body.get("overwriteWithBlank", True)))
            if err:
                return err
            self.contacts[cid] = c
            return json_response({"contact": self._view(c)}, status=200 if old else 201)

    @route("DELETE", r"/api/contacts/(?P<id>\d+)/delete")
    def delete_contact(self, req):
        with self._state_lock:
            c = self.contacts.pop(int(req.match.group("id")), None)
            for group in (*self.segments.values(), *self.campaigns.values()):
                group["members"].discard(int(req.match.group("id")))
            return json_response({"contact": self._view(c)}) if c else _not_found()

    @route("GET", r"/api/contacts")
    def search_contacts(self, req):
        search = (req.arg("search") or "").strip()
        wheres = {}
        for key, values in req.query.items():
            m = re.fullmatch(r"where\[(\d+)\]\[(col|expr|val)\]", key)
            if m:
                wheres.setdefault(m.group(1), {})[m.group(2)] = values[0]
        with self._state_lock:
            rows = sorted(self.contacts.values(), key=lambda c: c["id"])
            if search:
                col, sep, value = search.partition(":")
                value = value.strip('"') if sep and col in self.fields else search
                exact = sep and col in self.fields
                rows = [c for c in rows if (str(c["values"].get(col) or "").lower() == value.lower() if exact else
                                            any(value.lower() in str(c["values"].get(a) or "").lower() for a in ("firstname", "lastname", "email", "company")))]
            for w in wheres.values():
                col, val, expr = w.get("col"), str(w.get("val", "")), w.get("expr", "eq")
                pattern = re.escape(val).replace("%", ".*")
                tests = {"eq": lambda v: v.lower() == val.lower(), "neq": lambda v: v.lower() != val.lower(),
                         "like": lambda v: re.fullmatch(pattern, v, re.I) is not None}
                if expr not in tests:
                    return _error(400, f"Invalid expression: {expr}")
                rows = [c for c in rows if tests[expr](str(c["values"].get(col) or ""))]
            if req.arg("orderBy") in self.fields:
                rows.sort(key=lambda c: str(c["values"].get(req.arg("orderBy")) or ""), reverse=(req.arg("orderByDir") or "").upper() == "DESC")
            start = int(req.arg("start")) if (req.arg("start") or "").isdigit() else 0
            limit = int(req.arg("limit")) if (req.arg("limit") or "").isdigit() else 30
            page = {str(c["id"]): self._view(c) for c in rows[start:start + limit]}
        return json_response({"total": str(len(rows)), "contacts": page or []})

    @route("GET", r"/api/contacts/list/fields")
    def list_fields(self, req):
        return json_response({str(n): {"id": n, "label": a.replace("_", " ").title(), "alias": a, "type": "email" if a == "email" else "text", "group": g}
                              for n, (a, g) in enumerate(self.fields.items(), start=1)})

    @route("POST", r"/api/contacts/(?P<id>\d+)/dnc/(?P<channel>\w+)/(?P<op>add|remove)")
    def dnc(self, req):
        with self._state_lock:
            c = self.contacts.get(int(req.match.group("id")))
            if not c:
                return _not_found()
            channel, body = req.match.group("channel"), req.json if isinstance(req.json, dict) else {}
            c["dnc"] = [d for d in c["dnc"] if d["channel"] != channel]
            if req.match.group("op") == "add":
                self._apply(c, {"doNotContact": [{"channel": channel, "reason": body.get("reason", 3), "comments": body.get("comments", "")}]}, False)
            return json_response({"contact": self._view(c)})

    @route("POST", r"/api/contacts/(?P<id>\d+)/points/(?P<op>\w+)/(?P<delta>\d+)")
    def points(self, req):
        op, delta = req.match.group("op"), int(req.match.group("delta"))
        if op not in ("plus", "minus", "times", "divide") or (op == "divide" and delta == 0):
            return _error(400, f"Invalid operator or value: {op}/{delta}")
        body = req.json if isinstance(req.json, dict) else {}
        with self._state_lock:
            c = self.contacts.get(int(req.match.group("id")))
            if not c:
                return _not_found()
            p = c["points"]
            c["points"] = {"plus": p + delta, "minus": p - delta, "times": p * delta, "divide": p // delta if delta else p}[op]
            self.point_log.append((c["id"], op, delta, body.get("eventName"), body.get("actionName")))
        return json_response({"success": 1})

    # -- segments, campaigns, stages, notes, companies ---------------------------------------------

    @route("POST", r"/api/(?P<kind>segments|campaigns|stages)/(?P<id>\d+)/contact/(?P<cid>\d+)/(?P<op>add|remove)")
    def membership(self, req):
        kind, gid, cid = req.match.group("kind"), int(req.match.group("id")), int(req.match.group("cid"))
        with self._state_lock:
            group = getattr(self, kind).get(gid)
            if not group or cid not in self.contacts:
                return _not_found()
            if kind == "stages":
                self.contacts[cid]["stage"] = gid if req.match.group("op") == "add" else None
            else:
                (group["members"].add if req.match.group("op") == "add" else group["members"].discard)(cid)
        return json_response({"success": 1})

    @route("POST", r"/api/segments/(?P<id>\d+)/contacts/add")
    def segment_bulk_add(self, req):
        ids = (req.json or {}).get("ids") if isinstance(req.json, dict) else None
        with self._state_lock:
            segment = self.segments.get(int(req.match.group("id")))
            if not segment:
                return _not_found()
            details = {}
            for cid in ids or []:
                ok = int(cid) in self.contacts
                if ok:
                    segment["members"].add(int(cid))
                details[str(cid)] = {"success": ok}
        return json_response({"success": 1, "details": details})

    @route("GET", r"/api/segments")
    def list_segments(self, req):
        with self._state_lock:
            lists = {str(i): {"id": i, "name": s["name"], "alias": s["alias"], "isPublished": True} for i, s in self.segments.items()}
        return json_response({"total": len(lists), "lists": lists})

    @route("POST", r"/api/notes/new")
    def new_note(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        if not body.get("lead"):
            return _error(400, "lead ID is mandatory")
        with self._state_lock:
            c = self.contacts.get(int(body["lead"])) if str(body["lead"]).isdigit() else None
            if not c:
                return _not_found()
            note = {"id": next(self._ids["note"]), "text": body.get("text", ""), "type": body.get("type", "general"),
                    "dateTime": body.get("dateTime") or _now(), "lead": {"id": c["id"]}}
            self.notes[note["id"]] = note
        return json_response({"note": note}, status=201)

    @route("GET", r"/api/contacts/(?P<id>\d+)/notes")
    def contact_notes(self, req):
        needle = (req.arg("search") or "").lower()
        with self._state_lock:
            if int(req.match.group("id")) not in self.contacts:
                return _not_found()
            notes = [n for n in self.notes.values() if n["lead"]["id"] == int(req.match.group("id")) and needle in n["text"].lower()]
        start = int(req.arg("start")) if (req.arg("start") or "").isdigit() else 0
        limit = int(req.arg("limit")) if (req.arg("limit") or "").isdigit() else 30
        return json_response({"total": len(notes), "notes": notes[start:start + limit]})

    @route("POST", r"/api/companies/new")
    def new_company(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        if not body.get("companyname"):
            return _error(400, "companyname: A value is required.", details={"companyname": ["A value is required."]})
        with self._state_lock:
            company = next((c for c in self.companies.values() if c["fields"]["all"]["companyname"].lower() == body["companyname"].lower()), None)
            status = 200 if company else 201
            company = company or {"id": next(self._ids["company"]), "contacts": set(), "fields": {"all": {}}}
            company["fields"]["all"].update({k: v for k, v in body.items() if k.startswith("company")}, id=company["id"])
            self.companies[company["id"]] = company
            return json_response({"company": {"id": company["id"], "fields": company["fields"]}}, status=status)

    @route("POST", r"/api/companies/(?P<id>\d+)/contact/(?P<cid>\d+)/add")
    def company_add_contact(self, req):
        with self._state_lock:
            company = self.companies.get(int(req.match.group("id")))
            if not company or int(req.match.group("cid")) not in self.contacts:
                return _not_found()
            company["contacts"].add(int(req.match.group("cid")))
            self.contacts[int(req.match.group("cid"))]["values"]["company"] = company["fields"]["all"]["companyname"]
        return json_response({"success": 1})

    # -- webhooks (§4.5) ---------------------------------------------------------------------------

    def webhook_entry(self, event_key, contact_id, **extra):
        """One queued item of ``event_key`` about a contact (``mautic.lead_post_delete`` also carries ``id``)."""
        with self._state_lock:
            c = self.contacts.get(contact_id) or self._blank(contact_id)
            entry = {"contact": self._view(c), "timestamp": _now(), **extra}
        if event_key == "mautic.lead_post_delete":
            entry["id"] = contact_id
        return entry

    def build_webhook(self, payload, *, secret=None, wrong_key=False, missing_signature=False):
        """``(body bytes, headers)`` for ``payload`` = ``{event key: [entries]}``; the knobs make it fail verification."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Origin-Base-URL": self.url}
        if not missing_signature:
            headers["Webhook-Signature"] = sign((secret or self.webhook_secret) + ("-wrong" if wrong_key else ""), body, encoding=BASE64)
        return body, headers

    def send_webhook(self, url, payload, *, timeout=10.0, **knobs):
        body, headers = self.build_webhook(payload, **knobs)
        return deliver(url, body, headers, timeout=timeout)
