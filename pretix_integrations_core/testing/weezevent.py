"""
Fake Weezevent API (v1 routes), after ``shared/docs/weezevent-api.md``; its seeded data reproduces ``weezevent-samples/``:
event ``512345`` (two dates 90001/90002, rates at event level, in a category and a sub-category, mixed string/int ids) with
six participants (transaction 2029446 with two tickets, one scanned; 2031177 refunded; 2031300 deleted; 2031410 entered
by hand, free, no owner; 2031555 unpaid), and the single-date event ``512346`` without sales.

- ``POST /auth/access_token`` (form-encoded ``username``, ``password``, ``api_key``) -> ``{"accessToken": …}``; refused
  credentials -> 403; after five refusals for a login, 429 for 30 minutes (§1.2, §4). Attempts are counted in
  :attr:`login_attempts`.
- Every other route needs ``api_key`` and ``access_token`` in the query string (401 otherwise): ``GET /events``, ``/dates``,
  ``/tickets`` (``id_event[]``), ``/participant/list`` (``id_event[]``, ``full``, ``include_deleted``, ``include_unpaid``,
  ``max``, ``page`` from 1, ``last_update`` as ``YYYY-MM-DD HH:MM:SS`` local time); deleted and unpaid participants only
  when asked; answers and buyer only with ``full``; ``server_time`` in every list.
- More than ``rate_limit`` (600) requests a minute -> 429 (a ban).

Test helpers: :meth:`add_transaction`, :meth:`refund`, :meth:`delete`, :meth:`mark_paid`, :meth:`expire_tokens`, :meth:`add_transactions`.
"""
import copy
import datetime
import itertools
import secrets
import threading
import time
from collections import deque
from zoneinfo import ZoneInfo

from .fakeserver import FakeServer, json_response, route

DEMO_API_KEY = "demo-weezevent-api-key-5f1c2a"
DEMO_USERNAME = "billetterie@festival-des-lumieres.example.org"
DEMO_PASSWORD = "demo-weezevent-password"
DEMO_EVENT = "512345"
PARIS = ZoneInfo("Europe/Paris")

_EVENTS = [
    {"id": 512345, "name": "Festival des Lumières 2026", "date": {"start": "2026-07-04 14:00:00", "end": "2026-07-05 23:00:00"},
     "participants": 6, "multiple_dates": 1},
    {"id": 512346, "name": "Soirée de gala", "date": {"start": "2026-06-20 19:30:00", "end": ""}, "participants": 0, "multiple_dates": 0},
]
_DATES = [{"id": 90001, "id_event": 512345, "date": "2026-07-04 14:00:00", "tickets": ["2001", "2002", "2003"]},
          {"id": 90002, "id_event": 512345, "date": "2026-07-05 10:00:00", "tickets": ["2001", "2003"]}]
_TICKETS = {
    512345: {"id": 512345, "name": "Festival des Lumières 2026",
             "tickets": [{"id": "2001", "name": "Plein tarif", "price": 25, "participants": 3, "quota": 400,
                          "start_sale": "2026-03-01 09:00:00", "end_sale": "2026-07-05 20:00:00"}],
             "categories": [{"id": "3101", "name": "Tarifs réduits",
                             "tickets": [{"id": "2002", "name": "Tarif réduit", "price": 15.5, "participants": 2, "quota": 0}],
                             "categories": [{"id": 3102, "name": "Enfants", "tickets": [{"id": 2003, "name": "Enfant (-12 ans)", "price": 0}]}]}]},
    512346: {"id": 512346, "name": "Soirée de gala", "tickets": [{"id": "2101", "name": "Entrée", "price": 30}],
             "categories": [{"id": "3201", "name": "Réductions", "tickets": [{"id": 2102, "name": "Étudiant", "price": 18}]}]},
}


def paris_now():
    return datetime.datetime.now(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _participant(pid, date_id, rate, barcode, tx, first, last, email, *, created, paid=True, refund="0", deleted="0", promo="",
                 answers=(), buyer=None, origin="minisite", scanned=None, event_id=512345):
    return {
        "id_participant": pid, "id_event": event_id, "id_date": date_id, "id_ticket": rate, "barcode": barcode,
        "id_weez_ticket": f"T1E512345O{tx % 10000}", "deleted": deleted, "refund": refund, "paid": paid, "comment": "",
        "create_date": created, "origin": origin, "id_transaction": tx, "code_member": "",
        "transaction_reference": f"WZ-{tx}" if origin != "saisir" else "", "promo_code": promo,
        "control_status": {"status": "1" if scanned else "0", "scan_date": scanned or "0000-00-00 00:00:00",
                           "scan_user": "1789" if scanned else "0", "scan_user_name": "Entrée principale" if scanned else ""},
        "owner": {"first_name": first, "last_name": last, "email": email, "comment": "", "custom_field": "", "origin": origin},
        "answers": [{"label": k, "value": v} for k, v in answers],
        "buyer": buyer or {"id_acheteur": 880000 + tx % 1000, "email_acheteur": email, "acheteur_last_name": last,
                           "acheteur_first_name": first, "answers": []},
        "last_update": created,  # kept by the fake only, to answer last_update queries; removed from answers
    }


class FakeWeezevent(FakeServer):
    label = "Weezevent simulator (not the real Weezevent)"

    def __init__(self, *args, api_key=DEMO_API_KEY, username=DEMO_USERNAME, password=DEMO_PASSWORD, rate_limit=600, seed=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.api_key, self.username, self.password = api_key, username, password
        self.rate_limit = rate_limit
        self.events = copy.deepcopy(_EVENTS)
        self.dates = copy.deepcopy(_DATES)
        self.tickets = copy.deepcopy(_TICKETS)
        self.participants = []
        self.tokens = set()
        self.login_attempts = 0
        self._refusals = {}
        self._banned_until = {}
        self._hits = deque()
        self._lock = threading.RLock()
        self._ids = {k: itertools.count(s) for k, s in (("participant", 7800001), ("transaction", 2100001), ("barcode", 7500001))}
        if seed:
            self._seed()

    def _seed(self):
        claire_buyer = {"id_acheteur": 880011, "email_acheteur": "claire.martin@example.org", "acheteur_last_name": "Martin",
                        "acheteur_first_name": "Claire", "answers": [{"label": "Téléphone", "value": "0600000000"}]}
        size_club = lambda size, club: [("Taille de t-shirt", size), ("Club ou association", club)]  # noqa: E731
        self.participants = [
            _participant(7759645, 90001, "2001", "7448370", 2029446, "Claire", "Martin", "claire.martin@example.org", created="2026-05-02 10:41:36",
                         answers=size_club("M", "Photo-club de Lyon"), buyer=claire_buyer, scanned="2026-07-04 14:05:12"),
            _participant(7759646, 90001, "2002", "7448371", 2029446, "Léo", "Martin", "", created="2026-05-02 10:41:36", promo="ETUDIANT",
                         answers=size_club("S", ""), buyer=claire_buyer),
            _participant(7760100, 90001, "2001", "7448502", 2031177, "Paul", "Durand", "paul.durand@example.org", created="2026-05-10 21:13:02",
                         refund="1", answers=size_club("L", "")),
            _participant(7760155, 90002, "2001", "7448560", 2031300, "Inès", "Bernard", "ines.bernard@example.org", created="2026-05-12 08:00:00",
                         deleted="1"),
            _participant(7760200, 90002, 2003, "7448601", 2031410, "", "", "", created="2026-05-15 09:30:00", origin="saisir"),
            _participant(7760240, 90001, "2001", "7448655", 2031555, "Marc", "Leroy", "marc.leroy@example.org", created="2026-06-01 08:10:00",
                         paid=False, answers=size_club("M", "")),
        ]
        self.participants[2]["last_update"] = "2026-06-02 16:05:44"

    # -- helpers -----------------------------------------------------------------------------------

    def add_transaction(self, rates, *, date_id=90001, email="nouveau@example.org", first="Nouveau", last="Client", paid=True, answers=(),
                        event_id=512345, buyer_answers=()):
        """One transaction with one participant per rate id; returns ``(transaction id, [participants])``. ``buyer_answers``:
        the buyer's form (``(label, value)`` pairs), repeated in ``buyer.answers`` of every participant, as Weezevent does."""
        with self._lock:
            tx, now = next(self._ids["transaction"]), paris_now()
            buyer = {"id_acheteur": 880000 + tx % 1000, "email_acheteur": email, "acheteur_last_name": last, "acheteur_first_name": first,
                     "answers": [{"label": k, "value": v} for k, v in buyer_answers]}
            rows = [_participant(next(self._ids["participant"]), date_id, str(r), str(next(self._ids["barcode"])), tx, first, last, email,
                                 created=now, paid=paid, answers=answers, event_id=event_id, buyer=copy.deepcopy(buyer)) for r in rates]
            self.participants += rows
            return str(tx), rows

    def set_buyer_answers(self, tx, answers):
        """The buyer's form of transaction ``tx`` changed (``(label, value)`` pairs)."""
        with self._lock:
            for p in self.participants:
                if str(p["id_transaction"]) == str(tx):
                    p["buyer"]["answers"] = [{"label": k, "value": v} for k, v in answers]
                    p["last_update"] = paris_now()

    def scan(self, pid, when=None):
        """Participant ``pid`` scanned at the door (``control_status``), at ``when`` (Paris time) or now."""
        with self._lock:
            p = self._find(pid)
            when = when or paris_now()
            p["control_status"] = {"status": "1", "scan_date": when, "scan_user": "1789", "scan_user_name": "Entrée principale"}
            p["last_update"] = paris_now()

    def add_transactions(self, n, rate="2001", start=0):
        for i in range(start, start + n):
            self.add_transaction([rate], email=f"buyer{i}@example.org", first=f"Prénom{i}", last=f"Nom{i}",
                                 answers=[("Taille de t-shirt", "M")])

    def _find(self, pid):
        return next(p for p in self.participants if str(p["id_participant"]) == str(pid))

    def refund(self, pid):
        with self._lock:
            p = self._find(pid)
            p["refund"], p["last_update"] = "1", paris_now()

    def delete(self, pid, *, visible=False):
        """Delete a participant: listed with ``deleted: "1"`` when ``visible``, otherwise gone from every listing."""
        with self._lock:
            if visible:
                p = self._find(pid)
                p["deleted"], p["last_update"] = "1", paris_now()
            else:
                self.participants = [p for p in self.participants if str(p["id_participant"]) != str(pid)]

    def mark_paid(self, tx):
        with self._lock:
            for p in self.participants:
                if str(p["id_transaction"]) == str(tx):
                    p["paid"], p["last_update"] = True, paris_now()

    def expire_tokens(self):
        with self._lock:
            self.tokens.clear()

    # -- HTTP --------------------------------------------------------------------------------------

    def dispatch(self, req):
        with self._lock:
            now = time.monotonic()
            while self._hits and self._hits[0] < now - 60:
                self._hits.popleft()
            self._hits.append(now)
            if len(self._hits) > self.rate_limit:
                return json_response({"error": "Too many requests: access banned for 30 minutes"}, status=429)
            if req.path != "/auth/access_token":
                if req.arg("api_key") != self.api_key or req.arg("access_token") not in self.tokens:
                    return json_response({"error": "Unauthorized"}, status=401)
        return super().dispatch(req)

    @route("POST", r"/auth/access_token")
    def login(self, req):
        with self._lock:
            self.login_attempts += 1
            form = {**{k: v[0] for k, v in req.query.items()}, **req.form}
            user = form.get("username", "")
            if self._banned_until.get(user, 0) > time.monotonic():
                return json_response({"error": "Too many failed attempts: try again in 30 minutes"}, status=429)
            if (form.get("api_key"), user, form.get("password")) != (self.api_key, self.username, self.password):
                self._refusals[user] = self._refusals.get(user, 0) + 1
                if self._refusals[user] >= 5:
                    self._banned_until[user] = time.monotonic() + 1800
                return json_response({"error": "Invalid credentials"}, status=403)
            token = secrets.token_hex(16)
            self.tokens.add(token)
            return json_response({"accessToken": token})

    def _ids_arg(self, req, name="id_event[]"):
        return {str(v) for v in req.query.get(name, [])}

    @route("GET", r"/events")
    def get_events(self, req):
        return json_response({"events": self.events})

    @route("GET", r"/dates")
    def get_dates(self, req):
        ids = self._ids_arg(req)
        return json_response({"dates": [d for d in self.dates if str(d["id_event"]) in ids]})

    @route("GET", r"/tickets")
    def get_tickets(self, req):
        ids = self._ids_arg(req)
        return json_response({"events": [t for eid, t in self.tickets.items() if str(eid) in ids]})

    @route("GET", r"/participant/list")
    def participant_list(self, req):
        ids, full = self._ids_arg(req), req.arg("full") in ("1", "true")
        since = req.arg("last_update")
        with self._lock:
            rows = [p for p in self.participants if str(p["id_event"]) in ids
                    and (req.arg("include_deleted") in ("1", "true") or p["deleted"] != "1")
                    and (req.arg("include_unpaid") in ("1", "true") or p["paid"])
                    and (not since or p["last_update"] >= since)]
            size, page = int(req.arg("max") or 100), int(req.arg("page") or 1)
            rows = rows[(page - 1) * size:page * size]
            out = []
            for p in rows:
                p = {k: copy.deepcopy(v) for k, v in p.items() if k != "last_update"}
                if not full:
                    p.pop("answers"), p.pop("buyer")
                out.append(p)
        return json_response({"participants": out, "server_time": paris_now()})
