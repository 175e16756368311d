"""The core's one mapping from HTTP failures (real answers of a fake server) to pretix's data-sync errors."""
from datetime import timedelta

import pytest
from django.utils.translation import override

from pretix.base.datasync.datasync import RecoverableSyncError, SyncConfigError, UnrecoverableSyncError

from pretix_integrations_core.datasync import HttpRecoverableSyncError, retry_delay, service_detail, to_sync_error
from pretix_integrations_core.errors import ExternalServiceError
from pretix_integrations_core.httpclient import HttpClient
from pretix_integrations_core.testing.fakeserver import FakeServer, json_response, route


class Api(FakeServer):
    label = "api"

    @route("POST", r"/things")
    def create(self, req):
        return json_response({"ok": True}, status=201)


@pytest.fixture
def api():
    with Api() as s:
        yield s


def fail(api, **fault):
    """Send one POST to the fake scripted with ``fault``; return the pretix sync error it maps to."""
    api.fail_next(**fault)
    c = HttpClient("Mautic", api.url, scope="t", backoff=0.01, read_timeout=0.5, budget=2)
    with pytest.raises(ExternalServiceError) as e:
        c.request("POST", "/things", operation="create contact", json={"a": 1})
    with override("en"):
        return to_sync_error(e.value)


def test_credentials_refused_is_a_configuration_error(api):
    for status in (401, 403):
        err = fail(api, status=status, body={"errors": [{"code": status, "message": "The access token provided is invalid."}]})
        assert type(err) is SyncConfigError
        assert "Mautic refused our credentials" in err.messages[0]
        assert "The access token provided is invalid." in err.messages[0]


@pytest.mark.parametrize("status,body,said", [
    (400, {"errors": [{"code": 400, "message": "email: A valid email is required.", "details": {"email": ["A valid email is required."]}}]},
     "email: A valid email is required."),
    (404, {"errors": [{"code": 404, "message": "Item was not found.", "details": []}]}, "Item was not found."),
    (422, {"message": "The given data was invalid.", "errors": {"number": ["The number has already been taken."]}},
     "number: The number has already been taken."),
])
def test_rejections_are_permanent_with_what_the_service_said(api, status, body, said):
    err = fail(api, status=status, body=body)
    assert type(err) is UnrecoverableSyncError
    assert f"HTTP status {status}" in err.messages[0] and said in err.messages[0]
    assert api.url not in err.messages[0]


def test_rate_limit_with_and_without_retry_after(api):
    err = fail(api, status=429, headers={"Retry-After": "120"})
    assert isinstance(err, RecoverableSyncError) and err.retry_after == 120 and err.rate_limited
    assert retry_delay(1, err.retry_after, err.rate_limited) == timedelta(seconds=120)
    err = fail(api, status=429, body={"message": "Too many requests"})
    assert isinstance(err, HttpRecoverableSyncError) and err.retry_after is None
    assert retry_delay(1, None, rate_limited=True) == timedelta(minutes=2)
    assert retry_delay(1, 5, rate_limited=True) >= timedelta(seconds=60)


def test_server_errors_and_timeouts_are_recoverable(api):
    err = fail(api, status=503)
    assert isinstance(err, HttpRecoverableSyncError) and not err.outcome_unknown
    err = fail(api, delay=1.5)
    assert isinstance(err, HttpRecoverableSyncError)
    assert "did not answer in time" in err.messages[0]


def test_answer_lost_after_sending_is_recoverable_with_unknown_outcome(api):
    err = fail(api, drop=True)
    assert isinstance(err, HttpRecoverableSyncError) and err.outcome_unknown
    assert "checks for the object before creating it again" in err.messages[0]
    assert len(api.received("POST")) == 1  # a POST whose outcome is unknown is never repeated blindly


def test_backoff_grows_and_is_capped():
    delays = [retry_delay(n) for n in range(1, 9)]
    assert delays[:3] == [timedelta(minutes=2), timedelta(minutes=6), timedelta(minutes=18)]
    assert delays == sorted(delays) and delays[-1] == timedelta(hours=6)
    assert retry_delay(1, retry_after=10 ** 9) == timedelta(hours=6)


def test_service_detail_shapes():
    assert service_detail({"error": "Not authenticated"}) == "Not authenticated"
    assert service_detail(None) == ""
    assert len(service_detail({"message": "x" * 1000})) == 300
