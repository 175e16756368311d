"""
Circuit breaker keyed per external service and per organiser, kept in Django's cache.

With a shared cache (redis, memcached, database or file cache) its state holds across web workers and
celery workers. pretix's default cache is a dummy that stores nothing; then the breaker falls back to
a cache local to the process, so it still protects each worker on its own instead of doing nothing.

States: *closed* (requests pass, consecutive failures are counted), *open* (requests fail fast until
the cool-down ends), *half-open* (after the cool-down exactly one caller, across all workers, may try
a probe request; its success closes the circuit, its failure opens it again).
"""
import time

from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"

_process_local_cache = LocMemCache("pretix-integrations-breaker", {"OPTIONS": {"MAX_ENTRIES": 10000}})


def shared_cache():
    """Django's default cache, or a per-process cache when pretix runs with its dummy cache."""
    cache = caches["default"]
    if isinstance(cache, DummyCache):
        return _process_local_cache
    return cache


def increment(cache, key, timeout) -> int:
    """Atomically count in the cache; the count starts at 1 and expires ``timeout`` seconds after it was started."""
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


class CircuitBreaker:
    def __init__(self, service: str, scope, *, threshold: int = 5, cooldown: float = 30.0, cache=None):
        self.service = service
        self.scope = str(scope)
        self.threshold = threshold
        self.cooldown = cooldown
        self.cache = cache or shared_cache()
        base = f"pretix_integrations:breaker:{service}:{self.scope}".replace(" ", "_")  # memcached refuses spaces
        self._failures_key = base + ":failures"
        self._open_until_key = base + ":open_until"
        self._probe_key = base + ":probe"

    def _ttl(self):
        # Keep state well beyond the cool-down so an open circuit is not forgotten early.
        return int(self.cooldown * 10) + 60

    def state(self) -> str:
        open_until = self.cache.get(self._open_until_key)
        if open_until is None:
            return CLOSED
        if time.time() < open_until:
            return OPEN
        return HALF_OPEN

    def retry_after(self) -> float:
        open_until = self.cache.get(self._open_until_key)
        return max(0.0, open_until - time.time()) if open_until else 0.0

    def allow(self) -> bool:
        """May a request be sent now? In half-open state only the one caller that wins the probe may."""
        open_until = self.cache.get(self._open_until_key)
        if open_until is None:
            return True
        if time.time() < open_until:
            return False
        # cache.add is atomic on every real backend: exactly one worker gets the probe slot.
        return self.cache.add(self._probe_key, 1, timeout=max(1, int(self.cooldown)))

    def record_success(self):
        self.cache.delete_many([self._failures_key, self._open_until_key, self._probe_key])

    def record_failure(self):
        if self.cache.get(self._open_until_key) is not None:
            # A failed probe (or a late failure while open): open again for a full cool-down.
            self._open()
            return
        failures = increment(self.cache, self._failures_key, self._ttl())
        if failures >= self.threshold:
            self._open()

    def _open(self):
        self.cache.set(self._open_until_key, time.time() + self.cooldown, timeout=self._ttl())
        self.cache.delete_many([self._probe_key, self._failures_key])

    def reset(self):
        self.record_success()
