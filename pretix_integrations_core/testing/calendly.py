"""
Fake Calendly API v2 and its OAuth server on one port, after ``shared/docs/crm-apis.md`` §1 and the checklist
in §6.2/§6.3. Resource URIs point at the fake itself (``<fake url>/users/<uuid>``), so clients can follow them.

- ``GET /oauth/authorize`` (§1.2.1): checks client_id, ``response_type=code``, the redirect URI (when
  ``redirect_uris`` is set) and PKCE S256, then redirects 302 to ``<redirect_uri>?code=…&state=…``.
  Codes are single-use and live 10 minutes.
- ``POST /oauth/token`` (§1.2.2-1.2.5): form-encoded (JSON tolerated); client credentials as HTTP Basic or
  body fields (a public client may send only ``client_id``); grants ``authorization_code`` (redirect URI and
  ``code_verifier`` checked) and ``refresh_token`` (single-use, rotating: reuse -> 400 ``invalid_grant``).
  Answer ``{access_token, refresh_token, token_type: "Bearer", scope, expires_in: 7200, created_at, owner,
  organization}``. Bad client -> 401 ``invalid_client``.
- ``POST /oauth/revoke`` (§1.2.4): 200 ``{}``; no token -> 400 ``invalid_request``; bad client -> 403.
- Everything else needs ``Authorization: Bearer`` (an OAuth access token or the personal access token):
  401 ``{"title": "Unauthenticated", "message": …}`` otherwise (§1.10). Every API response carries
  ``X-RateLimit-Limit/Remaining/Reset``; past ``rate_limit`` calls in a minute -> 429 (§1.11).
- ``GET /users/me`` (§1.3); ``GET /scheduled_events`` with the user/organization rules, ``status``,
  ``invitee_email``, ``min_start_time``/``max_start_time``, ``sort``, ``count`` (1-100) and ``page_token``
  (§1.4, §1.6); ``GET /scheduled_events/{uuid}``; invitees list and single (§1.5).
- ``/webhook_subscriptions`` POST (201; 409 ``Already Exists`` on the same URL; 403 "Please upgrade…" when
  ``paid_plan=False``), GET list (``organization`` and ``scope`` required), GET one, DELETE (204) (§1.7).
- Errors ``{"title", "message", "details"?}`` with the titles of §1.10.

``FakeCalendly(demo=True)`` (the demo's simulator) shows a consent page on ``/oauth/authorize`` (Allow / Deny) instead
of redirecting at once, adds a few bookings in the coming days, and offers ``/demo/book``: a page where anybody books a
call, which is delivered at once to the webhook subscriptions, as Calendly would.

Test helpers: :meth:`add_event`, :meth:`add_invitee`, :meth:`cancel_invitee`, :meth:`expire_access_tokens`,
:meth:`build_delivery` / :meth:`send_delivery` (an ``invitee.created``/``invitee.canceled`` delivery with its
embedded ``scheduled_event``, §1.8, signed ``Calendly-Webhook-Signature: t=…,v1=…`` §1.9, with knobs for a
stale ``t``, a wrong key, a missing or a malformed header) and :meth:`deliver_to_subscriptions`.
"""
import base64
import datetime
import hashlib
import html
import itertools
import json
import secrets
import threading
import time
import uuid as uuidlib
from urllib.parse import urlencode

from ..webhooks import sign
from .fakeserver import FakeServer, Response, deliver, json_response, redirect_response, route, text_response

DEMO_CLIENT_ID = "demo-calendly-client-id"
DEMO_CLIENT_SECRET = "demo-calendly-client-secret"
DEMO_WEBHOOK_SIGNING_KEY = "demo-calendly-webhook-signing-key"
DEMO_PERSONAL_ACCESS_TOKEN = "demo-calendly-personal-access-token"
DEMO_TOKEN = DEMO_PERSONAL_ACCESS_TOKEN  # the name demo/simulators.py looks for
DEMO_USER_UUID = "AAAAAAAAAAAAAAAA"
DEMO_ORGANIZATION_UUID = "BBBBBBBBBBBBBBBB"
SIGNATURE_TOLERANCE = 180
WEBHOOK_EVENTS = ("invitee.created", "invitee.canceled", "invitee_no_show.created", "invitee_no_show.deleted",
                  "routing_form_submission.created")
TITLES = {400: "Invalid Argument", 401: "Unauthenticated", 403: "Permission Denied", 404: "Resource Not Found",
          409: "Already Exists", 429: "Too Many Requests", 500: "Internal Server Error"}


def _error(status, message, details=None, headers=None):
    body = {"title": TITLES[status], "message": message}
    if details:
        body["details"] = [{"parameter": p, "message": m} for p, m in details]
    return json_response(body, status=status, headers=headers)


def _oauth_error(status, error, description):
    return json_response({"error": error, "error_description": description}, status=status)


def _ts(dt=None):
    return (dt or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid():
    return uuidlib.uuid4().hex.upper()[:16]


class FakeCalendly(FakeServer):
    label = "Calendly simulator (not the real Calendly)"

    def __init__(self, *args, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, signing_key=DEMO_WEBHOOK_SIGNING_KEY,
                 personal_access_token=DEMO_PERSONAL_ACCESS_TOKEN, redirect_uris=None, scope="default", access_token_lifetime=7200,
                 rate_limit=500, paid_plan=True, admin=True, seed=True, demo=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.client_id, self.client_secret, self.signing_key = client_id, client_secret, signing_key
        self.personal_access_token, self.redirect_uris, self.scope = personal_access_token, redirect_uris, scope
        self.access_token_lifetime, self.rate_limit, self.paid_plan, self.admin = access_token_lifetime, rate_limit, paid_plan, admin
        self.user_uri = f"{self.url}/users/{DEMO_USER_UUID}"
        self.organization_uri = f"{self.url}/organizations/{DEMO_ORGANIZATION_UUID}"
        self.user = {"uri": self.user_uri, "name": "Alex Host", "slug": "alex-host", "email": "alex.host@example.org",
                     "scheduling_url": "https://calendly.com/alex-host", "timezone": "Europe/Paris", "avatar_url": None,
                     "created_at": "2025-01-10T09:00:00.000000Z", "updated_at": "2026-01-05T12:00:00.000000Z",
                     "current_organization": self.organization_uri}
        self.events, self.invitees, self.hooks = {}, {}, {}  # invitees: event uuid -> {invitee uuid: invitee}
        self.codes, self.access_tokens, self.refresh_tokens, self._page_tokens = {}, {}, {}, {}
        self._window = [time.time(), 0]
        self._seq = itertools.count(1)
        self._state_lock = threading.RLock()
        if seed:
            start = datetime.datetime(2026, 9, 14, 9, 0, tzinfo=datetime.timezone.utc)
            for n, name in enumerate(("Intro workshop", "Follow-up call", "Studio visit")):
                ev = self.add_event(name, start + datetime.timedelta(days=n))
                self.add_invitee(ev, f"guest{n + 1}@example.org", f"Guest {n + 1}",
                                 questions=[{"question": "Company", "answer": "ACME", "position": 0}])
            self.add_invitee(ev, "guest4@example.org", "Guest 4")
        self.demo = demo
        if demo:
            self.seed_demo()

    def seed_demo(self):
        """Bookings of the coming days, so that the demo's rolling window always has some (whatever today is)."""
        soon = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0) + datetime.timedelta(days=2)
        for n, (name, email, who) in enumerate((("Discovery call", "lea.dubois@example.org", "Léa Dubois"),
                                                ("Group visit", "marc.petit@example.org", "Marc Petit"),
                                                ("Trial session", "sofia.garcia@example.org", "Sofia Garcia"))):
            ev = self.add_event(name, soon + datetime.timedelta(days=n, hours=n), location={
                "type": "zoom", "join_url": f"https://zoom.example/j/{1000 + n}", "status": "pushed"} if n == 0 else None)
            questions = [{"question": "Phone number", "answer": f"+33 6 12 34 56 7{n}", "position": 0},
                         {"question": "How many people?", "answer": str(2 + n * 5), "position": 1}]
            self.add_invitee(ev, email, who, questions=questions)

    # -- OAuth -------------------------------------------------------------------------------------

    @route("GET", r"/oauth/authorize")
    def authorize(self, req):
        redirect_uri, challenge = req.arg("redirect_uri"), req.arg("code_challenge")
        if req.arg("client_id") != self.client_id:
            return _oauth_error(400, "invalid_client", "Unknown client_id")
        if not redirect_uri or (self.redirect_uris is not None and redirect_uri not in self.redirect_uris):
            return _oauth_error(400, "invalid_request", "The redirect uri included is not valid.")
        if req.arg("response_type") != "code":
            return _oauth_error(400, "unsupported_response_type", "The authorization server does not support this response type.")
        if challenge and req.arg("code_challenge_method") != "S256":
            return _oauth_error(400, "invalid_request", "code_challenge_method must be S256")
        if self.demo and req.arg("approved") != "1":
            return self._consent_page(req)
        if self.demo and req.arg("approved") == "1" and req.arg("deny") == "1":
            query = {"error": "access_denied", **({"state": req.arg("state")} if req.arg("state") is not None else {})}
            return redirect_response(redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(query))
        code = secrets.token_urlsafe(24)
        with self._state_lock:
            self.codes[code] = {"redirect_uri": redirect_uri, "challenge": challenge, "expires_at": time.time() + 600, "used": False}
        query = {"code": code, **({"state": req.arg("state")} if req.arg("state") is not None else {})}
        return redirect_response(redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(query))

    def _consent_page(self, req):
        params = {k: v[0] for k, v in req.query.items()}
        allow = "/oauth/authorize?" + urlencode({**params, "approved": "1"})
        deny = "/oauth/authorize?" + urlencode({**params, "approved": "1", "deny": "1"})
        return text_response(
            "<!doctype html><html><head><meta charset='utf-8'><title>Calendly simulator: authorize</title></head>"
            "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
            "<p><em>Calendly simulator (not the real Calendly)</em></p>"
            f"<h1>Allow pretix to access your Calendly account?</h1><p>Signed in as {html.escape(self.user['name'])} "
            f"({html.escape(self.user['email'])}). pretix will read your scheduled events and invitees and receive webhooks.</p>"
            f"<p><a href='{html.escape(allow)}' style='padding:.5em 1em;background:#006bff;color:#fff'>Allow</a> "
            f"<a href='{html.escape(deny)}'>Deny</a></p></body></html>", content_type="text/html; charset=utf-8")

    @route("GET", r"/demo/book")
    def demo_book_form(self, req):
        return text_response(
            "<!doctype html><html><head><meta charset='utf-8'><title>Calendly simulator: book a call</title></head>"
            "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'><p><em>Calendly simulator (not the real Calendly)"
            "</em></p><h1>Book a call with Alex Host</h1><form method='post' action='/demo/book'>"
            "<p><label>Name <input name='name' required></label></p><p><label>Email <input name='email' type='email' required>"
            "</label></p><p><label>Phone <input name='phone'></label></p><p><label>Meeting <select name='event'>"
            "<option>Discovery call</option><option>Group visit</option><option>Trial session</option></select></label></p>"
            "<p><button type='submit'>Book</button></p></form></body></html>", content_type="text/html; charset=utf-8")

    @route("POST", r"/demo/book")
    def demo_book(self, req):
        form = req.form
        if not form.get("email") or not form.get("name"):
            return text_response("Name and email are required.", status=400)
        start = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0) + datetime.timedelta(days=3)
        ev = self.add_event(form.get("event") or "Discovery call", start)
        questions = [{"question": "Phone number", "answer": form["phone"], "position": 0}] if form.get("phone") else []
        inv = self.add_invitee(ev, form["email"], form["name"], questions=questions)
        deliveries = self.deliver_to_subscriptions("invitee.created", ev, inv)
        said = ", ".join(str(getattr(d, "status", "?")) for d in deliveries) or "no webhook subscription: the next sync reads it"
        return text_response(f"<!doctype html><html><body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
                             f"<h1>Booked</h1><p>{html.escape(form['name'])}, {start:%Y-%m-%d %H:%M} UTC. Webhook deliveries: "
                             f"{html.escape(said)}.</p><p><a href='/demo/book'>Book another</a></p></body></html>",
                             content_type="text/html; charset=utf-8")

    def _client_ok(self, req, form):
        client_id, secret = req.basic_auth or (form.get("client_id"), form.get("client_secret"))
        return client_id == self.client_id and secret in (None, self.client_secret)

    @route("POST", r"/oauth/token")
    def token(self, req):
        form = req.json if "json" in (req.header("Content-Type") or "") else req.form
        form = form if isinstance(form, dict) else {}
        if not self._client_ok(req, form):
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        grant, now = form.get("grant_type"), time.time()
        with self._state_lock:
            if grant == "authorization_code":
                code = self.codes.get(form.get("code"))
                verifier = (form.get("code_verifier") or "").encode()
                pkce = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
                if (not code or code["used"] or code["expires_at"] < now or code["redirect_uri"] != form.get("redirect_uri")
                        or (code["challenge"] and pkce != code["challenge"])):
                    return _oauth_error(400, "invalid_grant", "The provided authorization grant is invalid, expired, revoked, "
                                                              "does not match the redirection URI used in the authorization request, "
                                                              "or was issued to another client.")
                code["used"] = True
            elif grant == "refresh_token":
                if self.refresh_tokens.get(form.get("refresh_token")) != "active":
                    return _oauth_error(400, "invalid_grant", "The provided authorization grant is invalid, expired, or revoked.")
                self.refresh_tokens[form["refresh_token"]] = "used"
            else:
                return _oauth_error(400, "unsupported_grant_type", "The authorization grant type is not supported.")
            access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            self.access_tokens[access] = {"expires_at": now + self.access_token_lifetime, "revoked": False}
            self.refresh_tokens[refresh] = "active"
        return json_response({"access_token": access, "refresh_token": refresh, "token_type": "Bearer", "scope": self.scope,
                              "expires_in": self.access_token_lifetime, "created_at": int(now), "owner": self.user_uri,
                              "organization": self.organization_uri})

    @route("POST", r"/oauth/revoke")
    def revoke(self, req):
        form = req.form
        if not form.get("token"):
            return _oauth_error(400, "invalid_request", "The request is missing a required parameter: token")
        if not self._client_ok(req, form):
            return _oauth_error(403, "unauthorized_client", "You are not authorized to revoke this token")
        with self._state_lock:
            if form["token"] in self.access_tokens:
                self.access_tokens[form["token"]]["revoked"] = True
            if form["token"] in self.refresh_tokens:
                self.refresh_tokens[form["token"]] = "revoked"
        return json_response({})

    def expire_access_tokens(self):
        with self._state_lock:
            for info in self.access_tokens.values():
                info["expires_at"] = 0

    # -- auth, rate limit --------------------------------------------------------------------------

    def dispatch(self, req):
        if req.path.startswith("/oauth/") or (self.demo and req.path.startswith("/demo/")):
            return super().dispatch(req)
        with self._state_lock:
            now = time.time()
            if now - self._window[0] >= 60:
                self._window = [now, 0]
            self._window[1] += 1
            headers = {"X-RateLimit-Limit": str(self.rate_limit), "X-RateLimit-Remaining": str(max(0, self.rate_limit - self._window[1])),
                       "X-RateLimit-Reset": str(max(1, int(self._window[0] + 60 - now)))}
            info = self.access_tokens.get(req.bearer)
            limited = self._window[1] > self.rate_limit
        if req.bearer != self.personal_access_token:
            problem = ("The access token is invalid" if not info else "The access token is revoked" if info["revoked"]
                       else "The access token expired" if info["expires_at"] < now else None)
            if problem:
                return _error(401, problem, headers=headers)
        if limited:
            return _error(429, "Rate limit exceeded. Please wait before making more requests.", headers=headers)
        resp = super().dispatch(req)
        resp.headers.update(headers)
        return resp

    def not_found(self, req):
        return _error(404, "The server could not find the requested resource.")

    # -- data --------------------------------------------------------------------------------------

    def add_event(self, name, start_time, *, duration_minutes=60, status="active", location=None):
        """Add a scheduled event (§1.4) and return its uuid."""
        event_uuid, now = _uuid(), _ts()
        with self._state_lock:
            self.events[event_uuid] = {
                "uri": f"{self.url}/scheduled_events/{event_uuid}", "name": name, "meeting_notes_plain": None, "meeting_notes_html": None,
                "status": status, "start_time": _ts(start_time), "end_time": _ts(start_time + datetime.timedelta(minutes=duration_minutes)),
                "event_type": f"{self.url}/event_types/{_uuid()}", "location": location or {"type": "physical", "location": "12 rue de la Paix, Paris"},
                "invitees_counter": {"total": 0, "active": 0, "limit": 1}, "created_at": now, "updated_at": now,
                "event_memberships": [{"user": self.user_uri, "user_email": self.user["email"], "user_name": self.user["name"]}],
                "event_guests": [], "calendar_event": None}
            self.invitees[event_uuid] = {}
        return event_uuid

    def add_invitee(self, event_uuid, email, name, *, questions=(), first_name=None, last_name=None, payment=None):
        """Add an invitee (§1.5, every key present) to an event and return its uuid."""
        invitee_uuid, now = _uuid(), _ts(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(microseconds=next(self._seq)))
        with self._state_lock:
            event_uri = self.events[event_uuid]["uri"]
            self.invitees[event_uuid][invitee_uuid] = {
                "uri": f"{event_uri}/invitees/{invitee_uuid}", "email": email, "name": name, "first_name": first_name, "last_name": last_name,
                "status": "active", "questions_and_answers": list(questions), "timezone": "Europe/Paris", "event": event_uri,
                "created_at": now, "updated_at": now, "tracking": dict.fromkeys(("utm_campaign", "utm_source", "utm_medium", "utm_content",
                                                                                 "utm_term", "salesforce_uuid")),
                "text_reminder_number": None, "rescheduled": False, "old_invitee": None, "new_invitee": None,
                "cancel_url": f"https://calendly.com/cancellations/{invitee_uuid}", "reschedule_url": f"https://calendly.com/reschedulings/{invitee_uuid}",
                "routing_form_submission": None, "payment": payment, "no_show": None, "reconfirmation": None,
                "scheduling_method": None, "invitee_scheduled_by": None}
        return invitee_uuid

    def cancel_invitee(self, event_uuid, invitee_uuid, *, reason="Schedule conflict", canceler_type="invitee", new_invitee=None):
        """Cancel an invitee; with ``new_invitee`` (a uri) it is the canceled half of a reschedule (§1.8)."""
        with self._state_lock:
            inv = self.invitees[event_uuid][invitee_uuid]
            inv.update(status="canceled", updated_at=_ts(), rescheduled=bool(new_invitee), new_invitee=new_invitee,
                       cancellation={"canceled_by": inv["name"] if canceler_type == "invitee" else self.user["name"], "reason": reason,
                                     "canceler_type": canceler_type, "created_at": _ts()})

    def _event_view(self, event_uuid):
        event = json.loads(json.dumps(self.events[event_uuid]))
        invitees = self.invitees[event_uuid].values()
        event["invitees_counter"].update(total=len(invitees), active=sum(i["status"] == "active" for i in invitees))
        return event

    # -- API ---------------------------------------------------------------------------------------

    def _page(self, req, items):
        count, token = req.arg("count", "20"), req.arg("page_token")
        if not count.isdigit() or not 1 <= int(count) <= 100:
            return _error(400, "The supplied parameters are invalid.", [("count", "must be between 1 and 100")])
        count = int(count)
        with self._state_lock:
            offset = self._page_tokens.get(token, None) if token else 0
            if offset is None:
                return _error(400, "The supplied parameters are invalid.", [("page_token", "is invalid")])
            links = {}
            for name, target in (("next", offset + count if offset + count < len(items) else None), ("previous", max(0, offset - count) if offset else None)):
                new = secrets.token_urlsafe(12) if target is not None else None
                if new:
                    self._page_tokens[new] = target
                params = {k: v for k, v in req.query.items() if k != "page_token"}
                links[f"{name}_page"] = f"{self.url}{req.path}?{urlencode({**params, 'page_token': new}, doseq=True)}" if new else None
                links[f"{name}_page_token"] = new
        page = items[offset:offset + count]
        return json_response({"collection": page, "pagination": {"count": len(page), **links}})

    @staticmethod
    def _sorted(req, items, field, default):
        key, _, direction = (req.arg("sort") or default).partition(":")
        if key != field or direction not in ("asc", "desc"):
            return None
        return sorted(items, key=lambda x: (x[field], x["uri"]), reverse=direction == "desc")

    @route("GET", r"/users/me")
    def users_me(self, req):
        return json_response({"resource": self.user})

    @route("GET", r"/scheduled_events")
    def list_events(self, req):
        user, org = req.arg("user"), req.arg("organization")
        if not user and not org:
            return _error(400, "The supplied parameters are invalid.", [("organization", "organization or user is required")])
        if org and org != self.organization_uri:
            return _error(403, "You do not have permission")
        if user and user != self.user_uri and not org:
            return _error(403, "Please also specify organization when requesting events for a user within your organization.")
        if org and (not user or user != self.user_uri) and not self.admin:
            return _error(403, "You do not have permission")
        with self._state_lock:
            events = [self._event_view(u) for u in self.events if not user or user == self.user_uri]
            if req.arg("invitee_email"):
                events = [e for e in events if any(i["email"] == req.arg("invitee_email") for i in self.invitees[e["uri"].rsplit("/", 1)[1]].values())]
        events = [e for e in events if (not req.arg("status") or e["status"] == req.arg("status"))
                  and (not req.arg("min_start_time") or e["start_time"] >= req.arg("min_start_time"))
                  and (not req.arg("max_start_time") or e["start_time"] < req.arg("max_start_time"))]
        events = self._sorted(req, events, "start_time", "start_time:asc")
        if events is None:
            return _error(400, "The supplied parameters are invalid.", [("sort", "must be start_time:asc or start_time:desc")])
        return self._page(req, events)

    @route("GET", r"/scheduled_events/(?P<uuid>[^/]+)")
    def get_event(self, req):
        with self._state_lock:
            if req.match.group("uuid") not in self.events:
                return self.not_found(req)
            return json_response({"resource": self._event_view(req.match.group("uuid"))})

    @route("GET", r"/scheduled_events/(?P<uuid>[^/]+)/invitees")
    def list_invitees(self, req):
        with self._state_lock:
            invitees = list(self.invitees.get(req.match.group("uuid"), {}).values())
            if req.match.group("uuid") not in self.events:
                return self.not_found(req)
        invitees = [i for i in invitees if (not req.arg("status") or i["status"] == req.arg("status"))
                    and (not req.arg("email") or i["email"] == req.arg("email"))]
        invitees = self._sorted(req, invitees, "created_at", "created_at:asc")
        if invitees is None:
            return _error(400, "The supplied parameters are invalid.", [("sort", "must be created_at:asc or created_at:desc")])
        return self._page(req, invitees)

    @route("GET", r"/scheduled_events/(?P<uuid>[^/]+)/invitees/(?P<invitee>[^/]+)")
    def get_invitee(self, req):
        invitee = self.invitees.get(req.match.group("uuid"), {}).get(req.match.group("invitee"))
        return json_response({"resource": invitee}) if invitee else self.not_found(req)

    @route("POST", r"/webhook_subscriptions")
    def create_hook(self, req):
        body = req.json if isinstance(req.json, dict) else {}
        missing = [(p, "is required") for p in ("url", "events", "organization", "scope") if not body.get(p)]
        if body.get("scope") == "user" and not body.get("user"):
            missing.append(("user", "is required when scope is user"))
        if body.get("scope") not in (None, "user", "organization"):
            missing.append(("scope", "must be organization or user"))
        bad = [e for e in body.get("events") or [] if e not in WEBHOOK_EVENTS]
        if "routing_form_submission.created" in (body.get("events") or []) and body.get("scope") != "organization":
            bad.append("routing_form_submission.created (organization scope only)")
        if missing or bad:
            return _error(400, "The supplied parameters are invalid.", missing + [("events", f"{e} is not valid") for e in bad])
        if not self.paid_plan:
            return _error(403, "Please upgrade your Calendly account to Standard")
        if body["organization"] != self.organization_uri:
            return _error(403, "You do not have permission")
        with self._state_lock:
            if any(h["resource"]["callback_url"] == body["url"] for h in self.hooks.values()):
                return _error(409, "Hook with this url already exists")
            hook_uuid, now = _uuid(), _ts()
            resource = {"uri": f"{self.url}/webhook_subscriptions/{hook_uuid}", "callback_url": body["url"], "created_at": now, "updated_at": now,
                        "retry_started_at": None, "state": "active", "events": list(body["events"]), "scope": body["scope"],
                        "organization": body["organization"], "user": body.get("user") if body["scope"] == "user" else None, "creator": self.user_uri}
            self.hooks[hook_uuid] = {"resource": resource, "signing_key": body.get("signing_key") or self.signing_key}
        return json_response({"resource": resource}, status=201)

    @route("GET", r"/webhook_subscriptions")
    def list_hooks(self, req):
        scope, user = req.arg("scope"), req.arg("user")
        missing = [(p, "is required") for p in ("organization", "scope") if not req.arg(p)]
        missing += [("user", "is required when scope is user")] if scope == "user" and not user else []
        if missing:
            return _error(400, "The supplied parameters are invalid.", missing)
        with self._state_lock:
            hooks = [h["resource"] for h in self.hooks.values() if h["resource"]["organization"] == req.arg("organization")
                     and h["resource"]["scope"] == scope and (scope != "user" or h["resource"]["user"] == user)]
        return self._page(req, self._sorted(req, hooks, "created_at", "created_at:asc") or hooks)

    @route("GET", r"/webhook_subscriptions/(?P<uuid>[^/]+)")
    def get_hook(self, req):
        hook = self.hooks.get(req.match.group("uuid"))
        return json_response({"resource": hook["resource"]}) if hook else self.not_found(req)

    @route("DELETE", r"/webhook_subscriptions/(?P<uuid>[^/]+)")
    def delete_hook(self, req):
        with self._state_lock:
            hook = self.hooks.pop(req.match.group("uuid"), None)
        return Response(204, b"", {}) if hook else self.not_found(req)

    # -- webhook deliveries (§1.8, §1.9) ------------------------------------------------------------

    def delivery_payload(self, event, event_uuid, invitee_uuid):
        with self._state_lock:
            invitee = json.loads(json.dumps(self.invitees[event_uuid][invitee_uuid]))
            scheduled = self._event_view(event_uuid)
        if invitee.get("cancellation"):
            scheduled["cancellation"] = invitee["cancellation"]
        return {"event": event, "created_at": _ts(), "created_by": self.user_uri, "payload": {**invitee, "scheduled_event": scheduled}}

    def build_delivery(self, event, event_uuid, invitee_uuid, *, signing_key=None, timestamp=None, stale=False, wrong_key=False,
                       missing_header=False, malformed_header=False):
        """``(body bytes, headers)`` of one delivery. The knobs produce signatures a receiver must refuse."""
        body = json.dumps(self.delivery_payload(event, event_uuid, invitee_uuid), separators=(",", ":")).encode()
        t = int(timestamp if timestamp is not None else time.time() - (SIGNATURE_TOLERANCE + 120 if stale else 0))
        sig = sign((signing_key or self.signing_key) + ("-wrong" if wrong_key else ""), body, timestamp=t)
        headers = {"Content-Type": "application/json", "User-Agent": "Calendly-Webhooks"}
        if not missing_header:
            headers["Calendly-Webhook-Signature"] = sig if malformed_header else f"t={t},v1={sig}"
        return body, headers

    def send_delivery(self, url, event, event_uuid, invitee_uuid, timeout=10.0, **knobs):
        """POST one delivery to ``url``, signed with that URL's subscription key if there is one, else the app key."""
        with self._state_lock:
            key = next((h["signing_key"] for h in self.hooks.values() if h["resource"]["callback_url"] == url), None)
        knobs.setdefault("signing_key", key)
        body, headers = self.build_delivery(event, event_uuid, invitee_uuid, **knobs)
        return deliver(url, body, headers, timeout=timeout)

    def deliver_to_subscriptions(self, event, event_uuid, invitee_uuid):
        """Deliver to every active subscription for ``event``, as Calendly would; returns the deliveries."""
        with self._state_lock:
            urls = [h["resource"]["callback_url"] for h in self.hooks.values() if event in h["resource"]["events"] and h["resource"]["state"] == "active"]
        return [self.send_delivery(url, event, event_uuid, invitee_uuid) for url in urls]
