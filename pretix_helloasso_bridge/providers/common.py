"""
What the French ticketing platforms share (Billetweb, Weezevent): lenient parsing of their values (ids as strings or
integers, ``"0"``/``"1"`` flags, euro strings, naive Europe/Paris dates with ``0000-00-00 00:00:00`` for "none") and a
per-account request budget that also makes the account's requests strictly sequential across processes.
"""
import time
import uuid
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from django.core.cache import cache

from pretix_integrations_core.errors import ServiceRateLimited

PARIS = ZoneInfo("Europe/Paris")
NO_DATES = {"", "0000-00-00 00:00:00", "0000-00-00", None}


def as_id(value) -> str:
    """Ids arrive as strings or integers: compare them as strings (``"1235"`` == ``1235``)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def flag(value) -> bool:
    """``"1"``, ``1``, ``true``, ``"true"`` -> True; ``"0"``, ``0``, ``""``, ``false``, None -> False."""
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def euros(value) -> Decimal:
    """A euro amount sent as a string (``"25.00"``, ``"9,99"``) or a number; 0.00 when unreadable."""
    if value is None or value is False or value == "":
        return Decimal("0.00")
    try:
        return Decimal(str(value).replace(",", ".").strip()).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return Decimal("0.00")


def local_date(value, tz=PARIS):
    """A naive ``YYYY-MM-DD HH:MM:SS`` in French local time (DST included) -> an aware datetime; None for "no date"."""
    if isinstance(value, str):
        value = value.strip()
    if value in NO_DATES:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("T", " "))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


class AccountBudget:
    """
    At most ``limit`` requests per ``window`` seconds for one platform account, one request at a time, across every
    worker sharing pretix's cache (redis in production): two syncs of the same account never call the platform at
    the same time, and the budget stays under the platform's limit. When the budget is used up, the caller waits for
    the next window if it fits in ``max_wait``; otherwise it stops with a "rate limited" error (the next sync goes on).
    """

    def __init__(self, service, account, *, limit, window, max_wait=90.0, lock_timeout=300.0):
        self.service = service
        self.key = f"pretix_helloasso_bridge:budget:{service}:{account}"
        self.limit, self.window, self.max_wait, self.lock_timeout = limit, window, max_wait, lock_timeout

    def _acquire_lock(self, deadline):
        token = uuid.uuid4().hex
        while not cache.add(self.key + ":lock", token, timeout=self.lock_timeout):
            if time.monotonic() > deadline:
                raise ServiceRateLimited(self.service, "budget", detail=str(_busy()))
            time.sleep(0.02)
        return token

    def _release_lock(self, token):
        if cache.get(self.key + ":lock") == token:
            cache.delete(self.key + ":lock")

    def call(self, fn, operation):
        """Run ``fn()`` (one HTTP request) holding the account's lock, within the budget."""
        deadline = time.monotonic() + self.max_wait
        token = self._acquire_lock(deadline)
        try:
            while True:
                bucket = int(time.time() // self.window)
                key = f"{self.key}:{bucket}"
                cache.add(key, 0, timeout=int(self.window * 2) + 1)
                try:
                    used = cache.incr(key)
                except ValueError:  # expired between add and incr
                    cache.set(key, 1, timeout=int(self.window * 2) + 1)
                    used = 1
                if used <= self.limit:
                    break
                wait = (bucket + 1) * self.window - time.time() + 0.01
                if time.monotonic() + wait > deadline:
                    raise ServiceRateLimited(self.service, operation, retry_after=wait, detail=str(_budget_used(self.limit, self.window)))
                time.sleep(wait)
            return fn()
        finally:
            self._release_lock(token)


def _busy():
    from django.utils.translation import gettext as _

    return _("Another sync of the same account is calling the platform; this one will go on at its next run.")


def _budget_used(limit, window):
    from django.utils.translation import gettext as _

    return _("The request budget of this account ({limit} requests per {window} seconds) is used up; the sync goes on at its next run.").format(
        limit=limit, window=int(window))
