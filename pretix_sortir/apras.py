"""
Client of the APRAS partner API (see shared/docs/sortir-apras.md §3). It only speaks HTTP.

- ``GET {origin}/api/partners/{card}`` with ``Authorization: <token>`` (raw, no "Bearer"): eligible only
  on HTTP 201, whose plain-text body is the *service key*; 404 means unknown, expired or not eligible.
- ``POST {origin}/api/partners/grant`` with ``{"token": <service key>}``: 200/201 and a JSON receipt.
  APRAS offers no idempotency key, so a grant is sent once and never repeated blindly.
"""
from dataclasses import dataclass

from pretix_integrations_core.errors import ServiceBadResponse
from pretix_integrations_core.httpclient import HttpClient, register_sensitive_path

SERVICE = "APRAS"
#: the longest a grant request may take, retries and slow bodies included (the outbox's sweep waits longer than this)
GRANT_BUDGET = 15.0
register_sensitive_path("/api/partners/")  # the card number is part of the check's path


@dataclass
class CardCheck:
    service_key: str
    first_name: str = ""
    last_name: str = ""


class AprasClient:
    def __init__(self, base_url: str, token: str, *, scope, timeout: float = 2.0):
        self.base_url = base_url
        self.token = token
        self.scope = scope
        self.timeout = timeout

    def _http(self, read_timeout, budget):
        # Connections are pooled per thread and the breaker lives in the cache: building a client is cheap.
        return HttpClient(
            SERVICE, self.base_url, scope=self.scope, headers={"Authorization": self.token, "Accept": "application/json"},
            connect_timeout=min(read_timeout, 3.05), read_timeout=read_timeout, budget=budget, max_attempts=2,
            backoff=0.1, breaker_threshold=5, breaker_cooldown=30,
        )

    def check_card(self, card: str) -> CardCheck:
        # The buyer waits: the whole check, retries included, must fit in the organiser's timeout.
        resp = self._http(self.timeout, self.timeout).request("GET", f"/api/partners/{card}", operation="card check")
        key = resp.text.strip()
        if resp.status_code != 201 or not key:
            raise ServiceBadResponse(SERVICE, "card check", status=resp.status_code)
        return CardCheck(
            service_key=key,
            first_name=resp.headers.get("X-Apras-Prenom", "").strip(),
            last_name=resp.headers.get("X-Apras-Nom", "").strip(),
        )

    def grant(self, service_key: str, *, budget: float = GRANT_BUDGET) -> dict:
        """Record the purchase. A 2xx whose body is not the documented JSON still counts as delivered."""
        resp = self._http(max(self.timeout, 10.0), budget).request(
            "POST", "/api/partners/grant", operation="grant", json={"token": service_key},
        )
        try:
            body = resp.json()
        except ValueError:
            body = None
        return body if isinstance(body, dict) else {}
