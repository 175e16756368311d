"""
Fake Billetweb API v1, after ``shared/docs/billetweb-api.md``; its seeded data reproduces ``billetweb-samples/``: event
``1350001`` (single date, 5 rates, orders 264751 paid with 2 tickets, 264790 refunded, 264802 free invitation, 264815 a pass
and its included ticket, 264820 unpaid reservation) and event ``1350002`` (two sessions 7001/7002, order 265001).

- Authentication: ``user``, ``key`` and ``version=1`` in the query string (§1.2); a wrong pair -> 403
  ``{"error": "unauthorized", …}``. A key restricted to some events (:meth:`restrict_key`) lists only those events, is
  refused on the others' routes and on the all-events ``/api/attendees`` with ``{"error": "unauthorized", "description":
  "This key has limited rights to specific events"}`` and a 200 status (§1.3).
- ``GET /api/events`` (``past``), ``/api/event/:id/dates``, ``/api/event/:id/tickets``, ``/api/event/:id/attendees``
  (``last_update`` in unix seconds, compared with the rows' naive Europe/Paris ``last_update``), ``/api/attendees``.
  Every answer is a bare JSON array of strings (prices of ``/tickets`` are numbers), errors are pretty-printed JSON.
- Rate limit: more than ``rate_limit`` (100) requests in 60 s for a user -> 429 with the ``rate_limiting`` body (§4).
  :meth:`challenge_next` makes the next answers Cloudflare's HTML challenge page (503).

Test helpers: :meth:`add_order`, :meth:`refund_ticket`, :meth:`delete_ticket`, :meth:`delete_order`, :meth:`add_orders`.
"""
import copy
import datetime
import itertools
import json
import threading
import time
from collections import deque
from zoneinfo import ZoneInfo

from .fakeserver import FakeServer, Response, route

DEMO_USER = "135790"
DEMO_KEY = "eccbc87e4b5ce2fe28308fd9f2a7baf3"
DEMO_EVENT = "1350001"
DEMO_SERIES_EVENT = "1350002"
PARIS = ZoneInfo("Europe/Paris")
CHALLENGE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head><body>
<noscript>Enable JavaScript and cookies to continue</noscript>
<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f0e"></script></body></html>"""

_EVENTS = [
    {"id": "1350001", "ext_id": "gala-lumieres-2026", "name": "Festival des Lumières 2026 - Soirée de gala", "start": "2026-06-20 19:30:00",
     "end": "2026-06-21 01:00:00", "multiple": "0", "place": "Salle des fêtes, 12 rue des Arts, 69001 Lyon, France",
     "shop": "https://www.billetweb.fr/shop.php?event=gala-lumieres-2026", "online": "1", "tax_rate": "5.5", "tags": ["festival", "gala"],
     "image": "https://www.billetweb.fr/files/event/1350001.jpg", "cover": "", "confirmation_message": ""},
    {"id": "1350002", "ext_id": "ateliers-lumiere-2026", "name": "Ateliers lumière (séances)", "start": "2026-07-04 14:00:00",
     "end": "2026-07-05 18:00:00", "multiple": "1", "place": "Atelier du festival, 69001 Lyon, France",
     "shop": "https://www.billetweb.fr/shop.php?event=ateliers-lumiere-2026", "online": "1", "tax_rate": "20", "tags": ["festival", ""],
     "image": "", "cover": "", "confirmation_message": "Merci ! Présentez votre billet à l'entrée de l'atelier."},
]


def _rate(rid, name, price, category="", description="", quota="0", tax="", commission=0.99, end_time=""):
    return {"id": rid, "full_name": f"{category} > {name}" if category else name, "name": name, "price": price, "category": category,
            "description": description, "quota": quota, "label": "", "visibility": "0", "instructions": "", "start_time": "",
            "end_time": end_time, "form": "1", "tax": tax, "commission": commission}


_TICKETS = {
    "1350001": [
        _rate("12693", "Plein tarif", 25, "Soirée"),
        _rate("12694", "Tarif réduit", 15, "Soirée", "Étudiants, demandeurs d'emploi (justificatif demandé à l'entrée)", "100",
              commission=0.79, end_time="2026-06-19 23:59:00"),
        _rate("12695", "Invitation", 0, commission=False),
        _rate("12696", "Pass week-end", 40, description="Comprend le repas du soir", quota="50", commission=1.19),
        _rate("12697", "Repas du soir", 12, "Options", tax="10", commission=0.49),
    ],
    "1350002": [_rate("12701", "Atelier adulte", 18, quota="20"), _rate("12702", "Atelier enfant", 12, quota="20")],
}
_DATES = {
    "1350001": [],
    "1350002": [
        {"id": "7001", "start": "2026-07-04 14:00:00", "end": "2026-07-04 16:00:00", "name": "", "place": "", "description": "",
         "instructions": "", "disabled": "0", "last_update": "2026-04-01 09:00:00", "quota": "20", "total_sales": "2",
         "tickets": {"12701": "12701", "12702": "12702"}},
        {"id": "7002", "start": "2026-07-05 10:00:00", "end": "2026-07-05 12:00:00", "name": "", "place": "", "description": "",
         "instructions": "", "disabled": "0", "last_update": "0000-00-00 00:00:00", "quota": "20", "total_sales": "0",
         "tickets": {"12701": "12701"}},
    ],
}


def paris_now():
    return datetime.datetime.now(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _unix(local):
    if not local or local.startswith("0000"):
        return 0
    return datetime.datetime.strptime(local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=PARIS).timestamp()


def _pretty_error(status, error, description):
    return Response(status, json.dumps({"error": error, "description": description}, indent=4).encode(),
                    {"Content-Type": "application/json"})


class FakeBilletweb(FakeServer):
    label = "Billetweb simulator (not the real Billetweb)"

    def __init__(self, *args, user=DEMO_USER, key=DEMO_KEY, rate_limit=100, seed=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.keys = {str(user): {"key": key, "events": None}}
        self.rate_limit = rate_limit
        self.events = copy.deepcopy(_EVENTS)
        self.tickets = copy.deepcopy(_TICKETS)
        self.dates = copy.deepcopy(_DATES)
        self.attendees = {"1350001": [], "1350002": []}
        self._hits = {}
        self._challenges = 0
        self._lock = threading.RLock()
        self._ids = {k: itertools.count(s) for k, s in (("ticket", 700001), ("order", 300001), ("barcode", 8100001))}
        if seed:
            self._seed()

    # -- data --------------------------------------------------------------------------------------

    def _row(self, event_id, order, t):
        rate = next(r for r in self.tickets[event_id] if r["id"] == t["ticket_id"])
        return {
            "id": t["id"], "ext_id": f"T{t['id'][-3:]}-{t['barcode'][-4:]}-E{event_id}", "barcode": t["barcode"],
            "used": t.get("used", "0"), "lane": t.get("lane", ""), "used_date": t.get("used_date", "0000-00-00 00:00:00"),
            "email": t.get("email", ""), "firstname": t.get("firstname", ""), "name": t.get("name", ""), "ticket": rate["name"],
            "category": rate["category"], "ticket_id": rate["id"], "price": t.get("price", "%.2f" % rate["price"]), "seating_location": "",
            "last_update": t.get("last_update", order["date"]), "reduction_code": t.get("reduction_code", ""), "authorization_code": "",
            "pass": t.get("pass", "0"), "disabled": t.get("disabled", "0"),
            "product_management": f"https://www.billetweb.fr/my_order.php?product={t['id']}&key=0f1e2d3c",
            "product_download": f"https://www.billetweb.fr/download.php?product={t['id']}&key=0f1e2d3c",
            "order_id": order["id"], "order_ext_id": f"C{order['id'][-3:]}-E{event_id}", "order_firstname": order["firstname"],
            "order_name": order["name"], "order_email": order["email"], "order_date": order["date"], "order_paid": order["paid"],
            "order_payment_type": order["payment_type"], "order_payment_date": order.get("payment_date", ""),
            "order_origin": order.get("origin", "web"), "order_price": order["price"], "order_session": t.get("session", "0"),
            "session_start": t.get("session_start", ""), "order_accreditation": "0",
            "order_management": f"https://www.billetweb.fr/my_order.php?order={order['id']}&key=9a8b7c6d", "order_language": "fr",
            "custom": t.get("custom", {}),
        }

    def _seed(self):
        def order(oid, first, name, email, date, paid, ptype, pdate, price, origin="web"):
            return {"id": oid, "firstname": first, "name": name, "email": email, "date": date, "paid": paid, "payment_type": ptype,
                    "payment_date": pdate, "price": price, "origin": origin}
        claire = order("264751", "Claire", "Martin", "claire.martin@example.org", "2026-05-02 10:41:36", "1", "web", "2026-05-02 10:42:01", "40.00")
        a = self.attendees["1350001"]
        a.append(self._row("1350001", claire, {"id": "656087", "barcode": "4475320", "used": "1", "lane": "controle n°1",
                                               "used_date": "2026-06-20 19:42:10", "email": "claire.martin@example.org", "firstname": "Claire",
                                               "name": "Martin", "ticket_id": "12693", "last_update": "2026-06-20 19:42:10",
                                               "custom": {"Taille de t-shirt": "M", "Club ou association": "Photo-club de Lyon"}}))
        a.append(self._row("1350001", claire, {"id": "656088", "barcode": "4475321", "firstname": "Léo", "name": "Martin", "ticket_id": "12694",
                                               "last_update": "2026-05-02 10:42:01",
                                               "custom": {"Taille de t-shirt": "S", "Club ou association": ""}}))
        paul = order("264790", "Paul", "Durand", "paul.durand@example.org", "2026-05-10 21:13:02", "0", "web", "2026-05-10 21:13:40", "25.00")
        a.append(self._row("1350001", paul, {"id": "656140", "barcode": "4475388", "email": "paul.durand@example.org", "firstname": "Paul",
                                             "name": "Durand", "ticket_id": "12693", "last_update": "2026-06-02 16:05:44", "reduction_code": "PROMO12",
                                             "disabled": "1", "custom": {"Taille de t-shirt": "L", "Club ou association": ""}}))
        ines = order("264802", "Inès", "Bernard", "invite@example.org", "2026-05-15 09:30:00", "1", "invitation", "2026-05-15 09:30:00", "0.00",
                     "Accueil presse")
        a.append(self._row("1350001", ines, {"id": "656151", "barcode": "4475399", "email": "invite@example.org", "firstname": "Inès",
                                             "name": "Bernard", "ticket_id": "12695", "last_update": "2026-05-15 09:30:00",
                                             "custom": {"Taille de t-shirt": "M", "Club ou association": "Le Progrès"}}))
        nora = order("264815", "Nora", "Petit", "nora.petit@example.org", "2026-05-20 12:00:05", "1", "web", "2026-05-20 12:01:12", "40.00")
        a.append(self._row("1350001", nora, {"id": "656160", "barcode": "4475412", "email": "nora.petit@example.org", "firstname": "Nora",
                                             "name": "Petit", "ticket_id": "12696", "last_update": "2026-05-20 12:01:12",
                                             "custom": {"Taille de t-shirt": "XL", "Club ou association": ""}}))
        a.append(self._row("1350001", nora, {"id": "656161", "barcode": "4475413", "email": "nora.petit@example.org", "firstname": "Nora",
                                             "name": "Petit", "ticket_id": "12697", "price": "0.00", "pass": "656160",
                                             "last_update": "2026-05-20 12:01:12"}))
        marc = order("264820", "Marc", "Leroy", "marc.leroy@example.org", "2026-06-01 08:10:00", "0", "reservation", "", "25.00")
        a.append(self._row("1350001", marc, {"id": "656170", "barcode": "4475420", "email": "marc.leroy@example.org", "firstname": "Marc",
                                             "name": "Leroy", "ticket_id": "12693", "last_update": "2026-06-01 08:10:00",
                                             "custom": {"Taille de t-shirt": "M", "Club ou association": ""}}))
        alex = order("265001", "Alex", "Roux", "alex.roux@example.org", "2026-05-03 18:19:30", "1", "card", "2026-05-03 18:20:00", "30.00", "Guichet")
        for tid, bc, first, email, rate, price in (("657001", "5580101", "Alex", "alex.roux@example.org", "12701", "18.00"),
                                                   ("657002", "5580102", "Sam", "", "12702", "12.00")):
            self.attendees["1350002"].append(self._row("1350002", alex, {
                "id": tid, "barcode": bc, "email": email, "firstname": first, "name": "Roux", "ticket_id": rate, "price": price,
                "last_update": "2026-05-03 18:20:00", "session": "7001", "session_start": "2026-07-04 14:00:00", "custom": {"Niveau": "Débutant"}}))

    def add_order(self, event_id=DEMO_EVENT, *, tickets, email="new.buyer@example.org", firstname="Nouveau", name="Client", paid=True,
                  payment_type="web", session=None, custom=None, custom_order=None):
        """Sell ``tickets`` (rate ids) in one order; returns ``(order id, [rows])``. ``custom_order``: the buyer's form
        (label -> value), repeated on every ticket row of the order."""
        with self._lock:
            now = paris_now()
            oid = str(next(self._ids["order"]))
            rates = {r["id"]: r for r in self.tickets[event_id]}
            total = sum(rates[t]["price"] for t in tickets)
            order = {"id": oid, "firstname": firstname, "name": name, "email": email, "date": now, "paid": "1" if paid else "0",
                     "payment_type": payment_type, "payment_date": now if paid else "", "price": "%.2f" % total}
            session_start = next((d["start"] for d in self.dates[event_id] if d["id"] == session), "") if session else ""
            rows = [self._row(event_id, order, {
                "id": str(next(self._ids["ticket"])), "barcode": str(next(self._ids["barcode"])), "email": email, "firstname": firstname,
                "name": name, "ticket_id": t, "last_update": now, "session": session or "0", "session_start": session_start,
                "custom": dict(custom or {})}) for t in tickets]
            if custom_order is not None:
                for r in rows:
                    r["custom_order"] = dict(custom_order)
            self.attendees[event_id].extend(rows)
            return oid, rows

    def add_orders(self, n, event_id=DEMO_EVENT, rate="12693", start=0):
        """``n`` paid one-ticket orders (the benchmark)."""
        for i in range(start, start + n):
            self.add_order(event_id, tickets=[rate], email=f"buyer{i}@example.org", firstname=f"Prénom{i}", name=f"Nom{i}",
                           custom={"Taille de t-shirt": "M"})

    def _touch(self, row):
        row["last_update"] = paris_now()

    def refund_ticket(self, ticket_id):
        """Refund one ticket (``disabled: "1"``); the order becomes "not paid" once every ticket is refunded."""
        with self._lock:
            for rows in self.attendees.values():
                for r in rows:
                    if r["id"] == str(ticket_id):
                        r["disabled"] = "1"
                        self._touch(r)
                        same = [x for x in rows if x["order_id"] == r["order_id"]]
                        if all(x["disabled"] == "1" for x in same):
                            for x in same:
                                x["order_paid"] = "0"
                                self._touch(x)
                        return r

    def set_order_answers(self, order_id, custom_order):
        """The buyer's form (``custom_order``) of an order changed."""
        with self._lock:
            for rows in self.attendees.values():
                for r in rows:
                    if r["order_id"] == str(order_id):
                        r["custom_order"] = dict(custom_order)
                        self._touch(r)

    def scan(self, ticket_id, when=None):
        """A ticket scanned at the door (``used: "1"``) at ``when`` (Paris time) or now."""
        with self._lock:
            for rows in self.attendees.values():
                for r in rows:
                    if r["id"] == str(ticket_id):
                        r["used"], r["used_date"], r["lane"] = "1", when or paris_now(), "porte@example.org"
                        self._touch(r)

    def mark_paid(self, order_id):
        with self._lock:
            for rows in self.attendees.values():
                for r in rows:
                    if r["order_id"] == str(order_id):
                        r["order_paid"], r["order_payment_date"] = "1", paris_now()
                        self._touch(r)

    def delete_ticket(self, ticket_id):
        """``delete_order`` of one ticket: it silently disappears from every listing."""
        with self._lock:
            for event_id, rows in self.attendees.items():
                self.attendees[event_id] = [r for r in rows if r["id"] != str(ticket_id)]

    def delete_order(self, order_id):
        with self._lock:
            for event_id, rows in self.attendees.items():
                self.attendees[event_id] = [r for r in rows if r["order_id"] != str(order_id)]

    def restrict_key(self, events, user=DEMO_USER):
        self.keys[str(user)]["events"] = {str(e) for e in events}

    def challenge_next(self, times=1):
        self._challenges += times

    # -- HTTP --------------------------------------------------------------------------------------

    def dispatch(self, req):
        if not req.path.startswith("/api/"):
            return super().dispatch(req)
        with self._lock:
            if self._challenges > 0:
                self._challenges -= 1
                return Response(503, CHALLENGE_PAGE.encode(), {"Content-Type": "text/html; charset=UTF-8", "Server": "cloudflare"})
            user, key = req.arg("user", ""), req.arg("key", "")
            account = self.keys.get(user)
            if account is None or account["key"] != key:
                return _pretty_error(403, "unauthorized", "Invalid user or key")
            hits = self._hits.setdefault(user, deque())
            now = time.monotonic()
            while hits and hits[0] < now - 60:
                hits.popleft()
            hits.append(now)
            if len(hits) > self.rate_limit:
                return _pretty_error(429, "rate_limiting", f"You exceed the global rate limiter : {self.rate_limit} hits per minute")
            req.account = account
        return super().dispatch(req)

    def _allowed(self, req, event_id):
        return req.account["events"] is None or str(event_id) in req.account["events"]

    def _json(self, data):
        return Response(200, json.dumps(data, ensure_ascii=False).encode(), {"Content-Type": "application/json"})

    def _restricted(self):
        return _pretty_error(200, "unauthorized", "This key has limited rights to specific events")

    @route("GET", r"/api/events")
    def get_events(self, req):
        past = req.arg("past") == "1"
        today = datetime.datetime.now(PARIS).strftime("%Y-%m-%d %H:%M:%S")
        return self._json([e for e in self.events if self._allowed(req, e["id"]) and (past or e["end"] >= today)])

    def _event_or_error(self, req, event_id):
        if not any(e["id"] == event_id for e in self.events):
            return _pretty_error(404, "not_found", "Unknown event")
        if not self._allowed(req, event_id):
            return self._restricted()
        return None

    @route("GET", r"/api/event/(?P<id>\d+)/dates")
    def get_dates(self, req):
        eid = req.match.group("id")
        return self._event_or_error(req, eid) or self._json(self.dates.get(eid, []))

    @route("GET", r"/api/event/(?P<id>\d+)/tickets")
    def get_tickets(self, req):
        eid = req.match.group("id")
        return self._event_or_error(req, eid) or self._json(self.tickets.get(eid, []))

    def _filter(self, req, rows):
        since = req.arg("last_update")
        if since:
            rows = [r for r in rows if _unix(r["last_update"]) >= float(since)]
        return rows

    @route("GET", r"/api/event/(?P<id>\d+)/attendees")
    def get_attendees(self, req):
        eid = req.match.group("id")
        with self._lock:
            return self._event_or_error(req, eid) or self._json(self._filter(req, list(self.attendees.get(eid, []))))

    @route("GET", r"/api/attendees")
    def get_all_attendees(self, req):
        if req.account["events"] is not None:
            return self._restricted()
        with self._lock:
            rows = []
            for e in self.events:
                rows += [{**r, "event": e["id"], "event_name": e["name"], "event_start": e["start"]}
                         for r in self._filter(req, self.attendees.get(e["id"], []))]
        return self._json(rows)
