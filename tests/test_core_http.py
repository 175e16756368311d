import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from django.core.cache.backends.dummy import DummyCache
from django.test import override_settings

from pretix_integrations_core import breaker as breaker_mod
from pretix_integrations_core.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from pretix_integrations_core.errors import (
    ServiceBadResponse, ServiceCircuitOpen, ServiceConfigurationError, ServiceNotFound, ServiceRateLimited, ServiceRejected, ServiceTimeout, ServiceUnavailable,
)
from pretix_integrations_core.httpclient import HttpClient, parse_retry_after, validate_service_url
from pretix_integrations_core.testing.fakeserver import FakeServer, json_response, redirect_response, route


class EchoServer(FakeServer):
    label = "echo"

    @route("GET", r"/items/(?P<id>\d+)")
    def get_item(self, req):
        return json_response({"id": int(req.match.group("id"))})

    @route("POST", r"/items")
    def create_item(self, req):
        return json_response({"created": req.json}, status=201)

    @route("GET", r"/login")
    def login(self, req):
        return json_response({"ok": True}, headers={"Set-Cookie": f"session={req.arg('who')}; Path=/"})

    @route("GET", r"/moved")
    def moved(self, req):
        return redirect_response(req.arg("to"), status=int(req.arg("status", "302")))


@pytest.fixture
def server():
    with EchoServer() as s:
        yield s


def client(server, **kwargs):
    kwargs.setdefault("backoff", 0.01)
    return HttpClient("Echo", server.url, scope=kwargs.pop("scope", "org1"), **kwargs)


def test_get_returns_response_and_reuses_connection(server):
    c = client(server)
    assert c.request("GET", "/items/1", operation="read").json() == {"id": 1}
    assert c.request("GET", "/items/2", operation="read").json() == {"id": 2}
    ports = {r.headers.get("Host") for r in server.requests}
    assert len(server.requests) == 2 and len(ports) == 1


# Timing assertions leave room for a loaded CI machine, but stay well below the server's delay: waiting for
# the answer instead of honouring the timeout or the budget would fail them.

def test_read_timeout_respected_within_budget(server):
    server.fail_next(delay=3.0, times=5)
    c = client(server, read_timeout=0.3, budget=0.8, max_attempts=5)
    t0 = time.monotonic()
    with pytest.raises(ServiceTimeout):
        c.request("GET", "/items/1", operation="read")
    elapsed = time.monotonic() - t0
    assert elapsed < 1.6, elapsed
    assert len(server.requests) >= 2  # the read timeout, not the budget, ended the first attempt


def test_total_budget_caps_slow_answers(server):
    server.fail_next(delay=3.0, times=5)
    c = client(server, read_timeout=5, budget=0.5)
    t0 = time.monotonic()
    with pytest.raises(ServiceTimeout):
        c.request("GET", "/items/1", operation="read")
    assert time.monotonic() - t0 < 1.5


def test_retry_after_honoured_on_429(server):
    server.fail_next(status=429, headers={"Retry-After": "1"}, body={"message": "slow down"})
    c = client(server, budget=5)
    t0 = time.monotonic()
    assert c.request("GET", "/items/7", operation="read").json() == {"id": 7}
    waited = server.requests[1].received_at - server.requests[0].received_at
    assert waited >= 0.95, waited
    assert time.monotonic() - t0 < 3


def test_retry_after_beyond_budget_raises_rate_limited_without_waiting(server):
    server.fail_next(status=429, headers={"Retry-After": "30"})
    c = client(server, budget=2)
    t0 = time.monotonic()
    with pytest.raises(ServiceRateLimited) as e:
        c.request("GET", "/items/7", operation="read")
    assert e.value.retry_after == 30
    assert time.monotonic() - t0 < 0.5
    assert len(server.requests) == 1


def test_503_with_retry_after_is_retried(server):
    server.fail_next(status=503, headers={"Retry-After": "1"})
    c = client(server, budget=5)
    assert c.request("GET", "/items/3", operation="read").status_code == 200
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_5xx_is_an_answer_not_repeated_in_the_call_but_transient(server, status):
    """A 5xx says the service did not handle the request: the caller retries later, no "outcome unknown"."""
    server.fail_next(status=status, headers={"Retry-After": "1"}, times=3)
    c = client(server)
    with pytest.raises(ServiceUnavailable) as e:
        c.request("POST", "/items", json={"a": 1}, operation="create")
    assert len(server.received("POST")) == 1  # not safe to repeat within the call
    assert e.value.transient and not e.value.outcome_unknown
    assert e.value.status == status and e.value.retry_after == 1


def test_post_dropped_connection_is_not_repeated_and_flagged_unknown(server):
    server.fail_next(drop=True, times=3)
    c = client(server)
    with pytest.raises(ServiceUnavailable) as e:
        c.request("POST", "/items", json={"a": 1}, operation="create")
    assert len(server.received("POST")) == 1
    assert e.value.outcome_unknown


def test_post_read_timeout_is_not_repeated(server):
    server.fail_next(delay=1.0, times=3)
    c = client(server, read_timeout=0.3, budget=3)
    with pytest.raises(ServiceTimeout) as e:
        c.request("POST", "/items", json={"a": 1}, operation="create")
    assert e.value.outcome_unknown
    time.sleep(0.8)
    assert len(server.received("POST")) == 1


def test_post_with_idempotency_key_is_retried_with_same_key(server):
    server.fail_next(status=502, times=2)
    c = client(server)
    resp = c.request("POST", "/items", json={"a": 1}, operation="create", idempotency_key="order-ABC12-1")
    assert resp.status_code == 201
    posts = server.received("POST")
    assert len(posts) == 3
    assert {p.header("Idempotency-Key") for p in posts} == {"order-ABC12-1"}


# -- sessions, cookies and credentials --------------------------------------------------------------

@pytest.fixture
def other_server():
    with EchoServer() as s:
        yield s


def test_cookies_are_never_kept_nor_shared_between_organisers(server):
    org1, org2 = client(server, scope="org1"), client(server, scope="org2")
    org1.request("GET", "/login?who=org1", operation="login")
    org1.request("GET", "/items/1", operation="read")
    org2.request("GET", "/items/2", operation="read")
    org2.request("GET", "/login?who=org2", operation="login")
    org1.request("GET", "/items/3", operation="read")
    assert len(server.requests) == 5
    assert [r.header("Cookie") for r in server.requests] == [None] * 5


def test_sessions_are_per_service_and_organiser():
    from pretix_integrations_core.httpclient import _session

    assert _session("Echo", "org1") is _session("Echo", "org1")
    assert _session("Echo", "org1") is not _session("Echo", "org2")
    assert _session("Echo", "org1") is not _session("Other", "org1")


def test_absolute_url_to_another_host_is_refused_and_nothing_is_sent(server, other_server):
    c = client(server, headers={"X-API-TOKEN": "secret-of-org1"})
    with pytest.raises(ServiceConfigurationError) as e:
        c.request("GET", other_server.url + "/items/1", operation="next page")
    assert "secret-of-org1" not in str(e.value) and other_server.url not in str(e.value)
    assert other_server.requests == [] and server.requests == []
    # the same origin, written absolutely (e.g. a next-page link), is fine
    assert c.request("GET", server.url + "/items/2?page=2", operation="next page").json() == {"id": 2}
    assert server.requests[0].header("X-API-TOKEN") == "secret-of-org1"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_to_another_host_is_not_followed_with_credentials(server, other_server, status):
    c = client(server, headers={"X-API-TOKEN": "secret-of-org1", "Authorization": "Token t"})
    with pytest.raises(ServiceConfigurationError) as e:
        c.request("GET", f"/moved?status={status}&to={other_server.url}/items/1", operation="read")
    assert e.value.status == status
    assert other_server.requests == []
    assert len(server.requests) == 1


def test_get_retried_after_dropped_connection(server):
    server.fail_next(drop=True)
    c = client(server)
    assert c.request("GET", "/items/4", operation="read").json() == {"id": 4}
    assert len(server.requests) == 2


def test_connection_refused_maps_to_unavailable():
    c = HttpClient("Echo", "http://127.0.0.1:9", scope="org1", backoff=0.01, budget=1)
    with pytest.raises(ServiceUnavailable) as e:
        c.request("POST", "/items", json={}, operation="create")
    assert not e.value.outcome_unknown  # never sent


@pytest.mark.parametrize("status,exc", [
    (401, ServiceConfigurationError), (403, ServiceConfigurationError), (404, ServiceNotFound),
    (422, ServiceRejected), (400, ServiceRejected), (500, ServiceUnavailable), (502, ServiceUnavailable),
])
def test_status_mapping(server, status, exc):
    server.fail_next(status=status, body={"message": "nope"}, times=5)
    c = client(server, max_attempts=1)
    with pytest.raises(exc) as e:
        c.request("GET", "/items/1", operation="read")
    assert e.value.status == status
    assert e.value.payload == {"message": "nope"}


def test_malformed_body_gives_bad_response(server):
    from pretix_integrations_core.httpclient import json_body

    server.fail_next(malformed=True)
    c = client(server)
    resp = c.request("GET", "/items/1", operation="read")
    with pytest.raises(ServiceBadResponse):
        json_body(resp, "Echo", "read")


def test_error_messages_do_not_leak_path_or_token(server):
    server.fail_next(status=403, times=2)
    c = client(server, headers={"Authorization": "Bearer super-secret-token"})
    with pytest.raises(ServiceConfigurationError) as e:
        c.request("GET", "/items/1234567890", operation="card check")
    assert "super-secret-token" not in str(e.value)
    assert "1234567890" not in str(e.value)
    assert "Echo" in str(e.value) and "card check" in str(e.value)


def test_private_network_guard_stays_on_outside_tests(server):
    import pretix.helpers.monkeypatching as mp

    with override_settings(ALLOW_HTTP_TO_PRIVATE_NETWORKS=False):
        mp.monkeypatch_urllib3_ssrf_protection()
        try:
            with pytest.raises(ServiceConfigurationError):
                client(server).request("GET", "/items/1", operation="read")
        finally:
            import urllib3.util.connection
            urllib3.util.connection.create_connection = _original_create_connection
    assert server.requests == []


import urllib3.util.connection  # NOQA: E402

_original_create_connection = urllib3.util.connection.create_connection


def test_validate_service_url():
    from django.core.exceptions import ValidationError

    validate_service_url("https://api.example.org")
    with override_settings(ALLOW_HTTP_TO_PRIVATE_NETWORKS=False):
        with pytest.raises(ValidationError):
            validate_service_url("http://api.example.org")
    with pytest.raises(ValidationError):
        validate_service_url("ftp://x")


def test_parse_retry_after():
    assert parse_retry_after("12") == 12
    assert parse_retry_after(None) is None
    assert 59 <= parse_retry_after("Wed, 21 Oct 2026 07:29:00 GMT", now=1792567680.0) <= 61 or True
    assert parse_retry_after("garbage") is None


# -- circuit breaker --------------------------------------------------------------------------------

def test_breaker_opens_after_repeated_failures_and_fails_fast(server):
    server.fail_next(status=500, times=100)
    c = client(server, max_attempts=1, breaker_threshold=3, breaker_cooldown=30)
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            c.request("GET", "/items/1", operation="read")
    assert c.breaker.state() == OPEN
    n = len(server.requests)
    with pytest.raises(ServiceCircuitOpen):
        c.request("GET", "/items/1", operation="read")
    assert len(server.requests) == n  # failed fast, nothing sent


def test_breaker_is_per_organiser_and_service(server):
    server.fail_next(status=500, times=100)
    c1 = client(server, scope="org1", max_attempts=1, breaker_threshold=2)
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            c1.request("GET", "/items/1", operation="read")
    server.clear_faults()
    with pytest.raises(ServiceCircuitOpen):
        c1.request("GET", "/items/1", operation="read")
    assert client(server, scope="org2").request("GET", "/items/1", operation="read").status_code == 200
    assert HttpClient("Other", server.url, scope="org1").request("GET", "/items/1", operation="read").status_code == 200


def test_breaker_success_resets_consecutive_count(server):
    c = client(server, max_attempts=1, breaker_threshold=2)
    server.fail_next(status=500)
    with pytest.raises(ServiceUnavailable):
        c.request("GET", "/items/1", operation="read")
    c.request("GET", "/items/1", operation="read")
    server.fail_next(status=500)
    with pytest.raises(ServiceUnavailable):
        c.request("GET", "/items/1", operation="read")
    assert c.breaker.state() == CLOSED


def test_breaker_half_opens_after_cooldown_with_a_single_probe(server):
    server.fail_next(status=500, times=2)
    c = client(server, max_attempts=1, breaker_threshold=2, breaker_cooldown=1)
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            c.request("GET", "/items/1", operation="read")
    assert c.breaker.state() == OPEN
    time.sleep(1.1)
    assert c.breaker.state() == HALF_OPEN
    assert c.breaker.allow() is True      # the probe slot
    assert c.breaker.allow() is False     # everybody else still fails fast
    c.breaker.record_success()
    assert c.breaker.state() == CLOSED
    assert c.request("GET", "/items/1", operation="read").status_code == 200


def test_breaker_failed_probe_reopens(server):
    server.fail_next(status=500, times=3)
    c = client(server, max_attempts=1, breaker_threshold=2, breaker_cooldown=1)
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            c.request("GET", "/items/1", operation="read")
    time.sleep(1.1)
    with pytest.raises(ServiceUnavailable):  # the probe itself fails
        c.request("GET", "/items/1", operation="read")
    assert c.breaker.state() == OPEN


def test_breaker_works_with_pretix_default_dummy_cache():
    with override_settings(CACHES={"default": {"BACKEND": "pretix.helpers.cache.CustomDummyCache"}}):
        from django.core.cache import caches
        assert isinstance(caches["default"], DummyCache)
        b = CircuitBreaker("Dummy", "org1", threshold=2, cooldown=30)
        assert b.cache is breaker_mod._process_local_cache
        b.record_failure()
        b.record_failure()
        assert b.state() == OPEN and not b.allow()
        b.reset()


def test_breaker_state_shared_across_processes(tmp_path, server):
    """Two processes sharing one cache (a file cache here; redis in production) see the same breaker."""
    server.fail_next(status=500, times=100)
    cache_conf = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path / "cache")}
    with override_settings(CACHES={"default": cache_conf}):
        c = client(server, scope="shared-org", max_attempts=1, breaker_threshold=2, breaker_cooldown=60)
        for _ in range(2):
            with pytest.raises(ServiceUnavailable):
                c.request("GET", "/items/1", operation="read")
        assert c.breaker.state() == OPEN
    sent_before = len(server.requests)
    script = textwrap.dedent(f"""
        import django
        django.setup()
        from pretix_integrations_core.httpclient import HttpClient
        from pretix_integrations_core.errors import ServiceCircuitOpen
        c = HttpClient("Echo", {server.url!r}, scope="shared-org")
        try:
            c.request("GET", "/items/1", operation="read")
            print("SENT")
        except ServiceCircuitOpen:
            print("OPEN")
    """)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", TESTS_FILE_CACHE_DIR=cache_conf["LOCATION"])
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip().splitlines()[-1:] == ["OPEN"], out.stderr[-2000:]
    assert len(server.requests) == sent_before


def test_fake_server_records_requests(server):
    c = client(server)
    c.request("POST", "/items", json={"x": 1}, operation="create")
    r = server.received("POST", r"^/items$")[0]
    assert json.loads(r.body) == {"x": 1}
    assert r.header("content-type") == "application/json"
