"""
Fake APRAS partner API (Sortir! / KorriGo), after ``shared/docs/sortir-apras.md``.

- ``GET /api/partners/<card>`` with header ``Authorization: <token>`` (raw, no "Bearer"):
  201 and the service key as plain text when the card is eligible; 404 when unknown, expired or not
  eligible; 401 without a token; 403 with a wrong token.
- ``POST /api/partners/grant`` with JSON ``{"token": <service key>}`` (optional ``activite``):
  201 and ``{id, date_demande, montant_activite, montant_aide, aide_coupon_sport, aide_autres,
  aide_additionnelle}``; 400 for a missing or unknown service key.

The APRAS API has no documented way to return a holder's name; the optional ``names`` map lets tests
and the demo exercise the "pre-fill attendee name" feature through extra response headers
(``X-Apras-Prenom`` / ``X-Apras-Nom``), which a real APRAS simply never sends.
"""
import datetime
import hashlib
import itertools
import json
import threading
import time

from .fakeserver import FakeServer, json_response, route, text_response

DEMO_TOKEN = "demo-apras-token"
#: card numbers the demo simulator knows (see README)
DEMO_VALID_CARDS = ("1000000001", "1000000002", "1000000003", "1000000004")
DEMO_UNKNOWN_CARD = "9999999999"
DEMO_SLOW_CARD = "5555555555"


def masked(card):
    """The simulator shows cards as pretix does: the last four digits only."""
    return f"•••• {str(card)[-4:]}" if card else "(no card)"


class FakeApras(FakeServer):
    label = "APRAS simulator (not the real APRAS)"
    log_name = "APRAS simulator"

    def __init__(self, *args, token=DEMO_TOKEN, valid_cards=DEMO_VALID_CARDS, slow_cards=(), slow_delay=5.0, names=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.token = token
        self.valid_cards = set(valid_cards)
        self.slow_cards = set(slow_cards)
        self.slow_delay = slow_delay
        self.names = dict(names or {})
        self.grants = []
        self._ids = itertools.count(1001)
        self._keys = {}
        self._state_lock = threading.Lock()

    def service_key(self, card):
        return "SK-" + hashlib.sha256(("fake-apras:" + card).encode()).hexdigest()[:24]

    def _auth_error(self, req):
        auth = req.header("Authorization")
        if not auth:
            return json_response({"message": "Token manquant"}, status=401)
        if auth != self.token:
            return json_response({"message": "Token invalide"}, status=403)
        return None

    @route("GET", r"/api/partners/(?P<card>[^/]+)")
    def check_card(self, req):
        err = self._auth_error(req)
        if err:
            return err
        card = req.match.group("card")
        if card in self.slow_cards:
            time.sleep(self.slow_delay)
        if card not in self.valid_cards and card not in self.slow_cards:
            return json_response({"message": "Carte inconnue ou droits expirés"}, status=404)
        key = self.service_key(card)
        with self._state_lock:
            self._keys[key] = card
        headers = {}
        if card in self.names:
            first, last = self.names[card]
            headers = {"X-Apras-Prenom": first, "X-Apras-Nom": last}
        return text_response(key, status=201, headers=headers)

    @route("POST", r"/api/partners/grant")
    def grant(self, req):
        err = self._auth_error(req)
        if err:
            return err
        body = req.json or {}
        key = body.get("token") if isinstance(body, dict) else None
        with self._state_lock:
            card = self._keys.get(key)
        if not key or card is None:
            return json_response({"message": "Paramètres invalides"}, status=400)
        grant = {
            "id": next(self._ids),
            "date_demande": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "montant_activite": 1600,
            "montant_aide": 1150,
            "aide_coupon_sport": 0,
            "aide_autres": 0,
            "aide_additionnelle": 0,
        }
        with self._state_lock:
            self.grants.append({"card": card, "service_key": key, **grant})
        return json_response(grant, status=201)

    def describe(self, req, resp):
        """The demo console shows every card check and every grant this simulator receives (cards masked)."""
        if req.method == "GET" and req.path.startswith("/api/partners/"):
            card = req.path.rsplit("/", 1)[-1]
            outcome = {201: "eligible", 404: "unknown or not eligible", 401: "no token", 403: "wrong token"}.get(
                resp.status, f"HTTP {resp.status}")
            return f"card check {masked(card)}: {outcome} ({resp.status})"
        if req.method == "POST" and req.path == "/api/partners/grant":
            body = req.json if isinstance(req.json, dict) else {}
            with self._state_lock:
                card = self._keys.get(body.get("token"))
            if resp.status == 201:
                return f"grant received for card {masked(card)}: recorded as APRAS id {json.loads(resp.body)['id']} ({resp.status})"
            return f"grant refused for card {masked(card)} ({resp.status} {resp.body.decode(errors='replace')[:80]})"
        return None
