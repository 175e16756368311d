"""
The one outbound HTTP layer of the suite, over ``requests``.

- connections are reused (one pooled session per service, organiser scope and thread) and cookies are never kept,
  so nothing set for one organiser can travel with another organiser's requests;
- credentials never leave the configured host: an absolute URL to another origin (e.g. a link found in a
  payload) is refused, and redirects are never followed (requests would strip ``Authorization`` on a
  cross-host redirect, but not custom headers such as ``X-API-TOKEN``);
- every attempt has a connect and a read timeout, and the whole operation a total time budget
  (retries, back-off, Retry-After waits and slow response bodies included);
- only requests that are safe to repeat are retried: GET/HEAD/OPTIONS, or a call made with an
  idempotency key. Other requests are repeated only when they provably never left this machine
  (connection refused, connect timeout);
- an HTTP answer, even a 5xx, is an answer: the error is transient and the caller may try again later.
  Only "sent, but no answer" (read timeout or connection dropped after sending) leaves the outcome of a
  request that is not safe to repeat unknown (``outcome_unknown``);
- ``Retry-After`` on 429/503 is honoured when it fits in the budget;
- errors map to the types in :mod:`pretix_integrations_core.errors`;
- a :class:`~pretix_integrations_core.breaker.CircuitBreaker` per (service, organiser) fails fast
  when the service keeps failing.

pretix's guard against requests to private networks is left as configured: requests to such an
address fail as a configuration error unless ``[pretix] allow_http_to_private_networks`` is on.
"""
import email.utils
import logging
import random
import threading
import time
from collections import OrderedDict
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, HTTPError as Urllib3HTTPError, NewConnectionError

from . import __version__
from .breaker import CircuitBreaker
from .errors import (
    ServiceBadResponse, ServiceCircuitOpen, ServiceConfigurationError, ServiceNotFound, ServiceRateLimited, ServiceRejected, ServiceTimeout, ServiceUnavailable,
)

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_BODY_BYTES = 20 * 1024 * 1024

_local = threading.local()
_sensitive_path_prefixes = set()


class _RedactSensitivePaths(logging.Filter):
    """urllib3 logs request lines at DEBUG level; paths under a registered prefix may carry personal data."""

    def filter(self, record):
        if _sensitive_path_prefixes and isinstance(record.args, tuple):
            record.args = tuple(
                next((p + "[redacted]" for p in _sensitive_path_prefixes if isinstance(a, str) and a.startswith(p)), a)
                for a in record.args
            )
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactSensitivePaths())


def register_sensitive_path(prefix: str):
    """Paths starting with ``prefix`` (e.g. ``/api/partners/`` followed by a card number) are never logged."""
    _sensitive_path_prefixes.add(prefix)


#: pooled sessions kept per thread; the least recently used one is closed beyond this
MAX_SESSIONS_PER_THREAD = 32


class _NoCookies(DefaultCookiePolicy):
    """A cookie policy that neither stores nor sends any cookie."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


def _session(service: str, scope: str) -> requests.Session:
    """This thread's pooled session for one service on behalf of one organiser (scope), without cookies."""
    sessions = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = OrderedDict()
    key = (service, scope)
    s = sessions.get(key)
    if s is None:
        s = requests.Session()
        s.cookies.set_policy(_NoCookies())
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        s.headers["User-Agent"] = f"pretix-fr-integrations/{__version__}"
        sessions[key] = s
        while len(sessions) > MAX_SESSIONS_PER_THREAD:
            sessions.popitem(last=False)[1].close()
    else:
        sessions.move_to_end(key)
    return s


def close_sessions():
    """Close this thread's pooled connections (tests call it so that no connection outlives its fake server)."""
    for s in (getattr(_local, "sessions", None) or {}).values():
        s.close()
    _local.sessions = OrderedDict()


def _origin(url: str):
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default_port


def validate_service_url(url: str):
    """Form validator: https is required, except where pretix allows requests to private networks (tests, demo)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("Enter a complete URL, for example https://api.example.org"))
    if parts.scheme != "https" and not getattr(settings, "ALLOW_HTTP_TO_PRIVATE_NETWORKS", False):
        raise ValidationError(_("The URL must start with https://"))


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if dt is None:
        return None
    return max(0.0, dt.timestamp() - (now if now is not None else time.time()))


def _never_sent(exc: requests.exceptions.RequestException) -> bool:
    """True when the request provably did not reach the server (so even a POST may be repeated)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.RequestException):
        return False
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _blocked_by_private_network_guard(exc) -> bool:
    # pretix.helpers.ssrf: "Request to local/private/multicast/RFC 6598 address ... blocked"
    text = str(exc)
    return text.startswith("Request to ") and text.endswith(" blocked")


class HttpClient:
    """
    A client for one external service on behalf of one organiser (the breaker scope).

    Plugin API clients wrap it and only speak HTTP: they build paths and bodies, call
    :meth:`request`, and turn JSON into values. Deciding what to do with errors is their callers' job.
    """

    def __init__(self, service: str, base_url: str, *, scope, headers=None, connect_timeout: float = 3.05,
                 read_timeout: float = 10.0, budget: float = 15.0, max_attempts: int = 3, backoff: float = 0.25,
                 breaker_threshold: int = 5, breaker_cooldown: float = 30.0, breaker: CircuitBreaker = None):
        self.service = service
        self.scope = str(scope)
        self.base_url = (base_url or "").rstrip("/")
        self.headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.budget = budget
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.breaker = breaker or CircuitBreaker(service, scope, threshold=breaker_threshold, cooldown=breaker_cooldown)

    def url(self, path: str) -> str:
        """The URL of ``path``; an absolute URL (e.g. a link from a payload) is accepted only on the configured origin."""
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.base_url + "/" + path.lstrip("/")

    def is_own_origin(self, url: str) -> bool:
        return bool(self.base_url) and _origin(url) == _origin(self.base_url)

    def request(self, method: str, path: str, *, operation: str, params=None, json=None, data=None, headers=None,
                idempotency_key: str = None, idempotency_header: str = "Idempotency-Key", retry_safe: bool = None,
                budget: float = None, ok_statuses=None) -> requests.Response:
        """
        Send a request and return the response if its status is 2xx (or in ``ok_statuses``).

        ``retry_safe`` overrides the retry rule for calls whose idempotency key travels in the body.
        """
        method = method.upper()
        if not self.base_url:
            raise ServiceConfigurationError(self.service, operation, detail=str(_("No URL is configured.")))
        url = self.url(path)
        if not self.is_own_origin(url):
            # The client's headers carry the organiser's credentials: they only ever go to the configured host.
            raise ServiceConfigurationError(self.service, operation, detail=str(
                _("The service pointed to another address than the configured one; nothing was sent there.")))
        hdrs = dict(self.headers)
        hdrs.update(headers or {})
        if idempotency_key:
            hdrs[idempotency_header] = idempotency_key
        if retry_safe is None:
            retry_safe = method in SAFE_METHODS or bool(idempotency_key)
        deadline = time.monotonic() + (budget if budget is not None else self.budget)

        attempt = 0
        while True:
            attempt += 1
            if not self.breaker.allow():
                raise ServiceCircuitOpen(self.service, operation, retry_after=self.breaker.retry_after())
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                raise ServiceTimeout(self.service, operation)
            started = time.monotonic()
            try:
                resp = self._send(method, url, deadline, params=params, json=json, data=data, headers=hdrs,
                                  timeout=(min(self.connect_timeout, remaining), min(self.read_timeout, remaining)))
            except (requests.exceptions.RequestException, Urllib3HTTPError) as e:
                error, may_repeat = self._map_transport_error(e, operation, retry_safe)
                self._log(operation, method, None, started, attempt, error.kind)
                if error.kind != "configuration":
                    self.breaker.record_failure()
                if may_repeat and self._can_retry(attempt, deadline, self._backoff_delay(attempt)):
                    self._sleep(self._backoff_delay(attempt), deadline)
                    continue
                raise error from None

            status = resp.status_code
            self._log(operation, method, status, started, attempt)
            if 200 <= status < 300 or (ok_statuses and status in ok_statuses):
                self.breaker.record_success()
                return resp

            error = self._map_status(resp, operation)
            if status >= 500:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()  # the service is up and answering
            if isinstance(error, (ServiceRateLimited, ServiceUnavailable)) and retry_safe:
                wait = error.retry_after if error.retry_after is not None else self._backoff_delay(attempt)
                if self._can_retry(attempt, deadline, wait):
                    self._sleep(wait, deadline)
                    continue
            raise error

    # -- internals -------------------------------------------------------------------------------

    def _send(self, method, url, deadline, *, timeout, **kwargs):
        # Redirects are never followed: the credentials in our headers must not reach another address.
        resp = _session(self.service, self.scope).request(method, url, timeout=timeout, stream=True, allow_redirects=False, **kwargs)
        try:
            chunks, size = [], 0
            for chunk in resp.iter_content(16384):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise requests.exceptions.ContentDecodingError("response body too large")
                if time.monotonic() > deadline:
                    raise requests.exceptions.ReadTimeout("total time budget exceeded while reading the body")
            resp._content = b"".join(chunks)
        finally:
            resp.close()
        return resp

    def _map_transport_error(self, e, operation, retry_safe):
        if _blocked_by_private_network_guard(e):
            return ServiceConfigurationError(
                self.service, operation,
                detail=str(_("The address points to a private network, which this pretix does not allow."))
            ), False
        never_sent = _never_sent(e)
        if isinstance(e, requests.exceptions.Timeout):
            return ServiceTimeout(self.service, operation, outcome_unknown=not never_sent and not retry_safe), retry_safe or never_sent
        if isinstance(e, requests.exceptions.ContentDecodingError):
            return ServiceBadResponse(self.service, operation), retry_safe
        return ServiceUnavailable(self.service, operation, outcome_unknown=not never_sent and not retry_safe), retry_safe or never_sent

    def _map_status(self, resp, operation):
        status = resp.status_code
        payload = None
        try:
            payload = resp.json() if resp.content else None
        except ValueError:
            payload = None
        kwargs = {"status": status, "payload": payload}
        if status in (401, 403):
            return ServiceConfigurationError(self.service, operation, **kwargs)
        if status in (404, 410):
            return ServiceNotFound(self.service, operation, **kwargs)
        if status == 429:
            # Retry-After when sent; else X-RateLimit-Reset, which Calendly (and others) send as seconds until the window resets
            wait = parse_retry_after(resp.headers.get("Retry-After"))
            if wait is None and (resp.headers.get("X-RateLimit-Reset") or "").strip().isdigit():
                wait = float(resp.headers["X-RateLimit-Reset"].strip())
                if wait > 1e9:  # some services send a unix time instead
                    wait = max(0.0, wait - time.time())
            return ServiceRateLimited(self.service, operation, retry_after=wait, **kwargs)
        if status >= 500:
            # An answer, not silence: the service says it could not handle the request now. Transient, so the
            # caller tries again later (a request that is not safe to repeat is not repeated within this call).
            return ServiceUnavailable(self.service, operation, retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                                      **kwargs)
        if 300 <= status < 400:
            return ServiceConfigurationError(self.service, operation, detail=str(
                _("The service redirected the request to another address, which is not followed; check the configured URL.")),
                **kwargs)
        return ServiceRejected(self.service, operation, **kwargs)

    def _backoff_delay(self, attempt):
        return self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)

    def _can_retry(self, attempt, deadline, wait):
        return attempt < self.max_attempts and time.monotonic() + wait < deadline - 0.05

    def _sleep(self, seconds, deadline):
        time.sleep(max(0.0, min(seconds, deadline - time.monotonic())))

    def _log(self, operation, method, status, started, attempt, error_kind=None):
        logger.info(
            "%s %s (%s): %s in %.0f ms, attempt %d",
            self.service, operation, method, status if status is not None else error_kind,
            (time.monotonic() - started) * 1000, attempt,
        )


def json_body(resp: requests.Response, service: str, operation: str):
    """Parse a JSON body or raise ServiceBadResponse (never includes the body in the message)."""
    try:
        return resp.json()
    except ValueError:
        raise ServiceBadResponse(service, operation, status=resp.status_code) from None
