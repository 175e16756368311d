"""OAuth2 token store and inbound webhook base view of the core, against the fake HelloAsso over HTTP."""
import json

import pytest
from django.db import transaction
from django.test import RequestFactory

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError
from pretix_integrations_core.httpclient import HttpClient
from pretix_integrations_core.inbound import InboundWebhookView
from pretix_integrations_core.models import OAuthToken, WebhookDelivery
from pretix_integrations_core.oauth import OAuth2ClientCredentials, OAuthClientRefused
from pretix_integrations_core.testing.helloasso import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORGANIZATION


def _client(server, secret=DEMO_CLIENT_SECRET):
    http = HttpClient("HelloAsso", server.url, scope="test", max_attempts=2, backoff=0.01)
    return OAuth2ClientCredentials("helloasso", client_id=DEMO_CLIENT_ID, client_secret=secret, http=http)


def _org(client):
    return client.request("GET", f"/v5/organizations/{DEMO_ORGANIZATION}", operation="organization").json()


def _grants(server):
    return [r.form.get("grant_type") for r in server.received("POST", r"^/oauth2/token$")]


@pytest.mark.django_db
def test_token_is_reused_and_stored_encrypted(fake_helloasso):
    c = _client(fake_helloasso)
    assert _org(c)["organizationSlug"] == DEMO_ORGANIZATION
    assert _org(_client(fake_helloasso))["organizationSlug"] == DEMO_ORGANIZATION  # another worker: same row
    assert _grants(fake_helloasso) == ["client_credentials"]
    row = OAuthToken.objects.get(service="helloasso", client_id=DEMO_CLIENT_ID)
    assert crypto.is_encrypted(row.access_token) and crypto.is_encrypted(row.refresh_token)
    assert crypto.decrypt(row.access_token) in fake_helloasso.access_tokens
    assert DEMO_CLIENT_SECRET not in row.access_token + row.refresh_token


@pytest.mark.django_db
def test_refresh_before_expiry_keeps_newest_refresh_token(fake_helloasso):
    fake_helloasso.expires_in = 30  # shorter than the 60 s margin: every use renews
    c = _client(fake_helloasso)
    for _ in range(3):
        _org(c)
    # the fake accepts each refresh token once (rotation): three renewals only work if the newest one is stored
    assert _grants(fake_helloasso) == ["client_credentials", "refresh_token", "refresh_token"]
    refreshes = fake_helloasso.received("POST", r"^/oauth2/token$")[1:]
    assert all("client_secret" not in r.form for r in refreshes)


@pytest.mark.django_db
def test_refused_refresh_token_falls_back_to_client_credentials(fake_helloasso):
    fake_helloasso.expires_in = 30
    c = _client(fake_helloasso)
    _org(c)
    fake_helloasso.refresh_tokens.clear()  # revoked / expired after 30 days
    _org(c)
    assert _grants(fake_helloasso) == ["client_credentials", "refresh_token", "client_credentials"]


@pytest.mark.django_db
def test_401_mid_run_renews_once_and_continues(fake_helloasso):
    c = _client(fake_helloasso)
    _org(c)
    fake_helloasso.expire_access_tokens()
    assert _org(c)["organizationSlug"] == DEMO_ORGANIZATION
    assert _grants(fake_helloasso) == ["client_credentials", "refresh_token"]
    # a 401 that persists is not retried forever
    fake_helloasso.fail_next(status=401, path=r"^/v5/", times=2)
    with pytest.raises(ServiceConfigurationError) as e:
        _org(c)
    assert e.value.status == 401


@pytest.mark.django_db
def test_403_is_a_configuration_error_without_renewal(fake_helloasso):
    c = _client(fake_helloasso)
    with pytest.raises(ServiceConfigurationError) as e:
        c.request("GET", "/v5/organizations/other-org/forms/Event/x/orders", operation="orders")
    assert e.value.status == 403
    assert _grants(fake_helloasso) == ["client_credentials"]


@pytest.mark.django_db
def test_wrong_client_secret_is_refused_without_leaking_it(fake_helloasso):
    c = _client(fake_helloasso, secret="not-the-secret")
    with pytest.raises(OAuthClientRefused) as e:
        _org(c)
    assert "not-the-secret" not in str(e.value)
    assert not fake_helloasso.received("GET", r"^/v5/")


# -- inbound webhook base view ----------------------------------------------------------------------

class DemoWebhookView(InboundWebhookView):
    service = "demo"
    max_body_bytes = 1024
    enqueued = []

    def get_connection(self, request, **kwargs):
        if kwargs.get("conn") == "c1":
            return "c1", "s3cr3t-0123456789abcdefghij", {"conn": "c1"}
        return None

    def enqueue(self, context, payload, delivery_id):
        self.enqueued.append((context["conn"], payload))


def _post(body, secret="s3cr3t-0123456789abcdefghij", conn="c1"):
    req = RequestFactory().post("/hook/", data=body, content_type="application/json")
    return DemoWebhookView.as_view()(req, conn=conn, secret=secret)


@pytest.mark.django_db
def test_webhook_base_view_dedupes_and_enqueues_after_commit(django_capture_on_commit_callbacks):
    DemoWebhookView.enqueued = []
    body = json.dumps({"eventType": "Order", "data": {"id": 1}})
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(body).status_code == 202
    assert DemoWebhookView.enqueued == [("c1", {"eventType": "Order", "data": {"id": 1}})]
    with django_capture_on_commit_callbacks(execute=True):
        assert _post(body).status_code == 200  # the same delivery again: acknowledged, not processed
    assert len(DemoWebhookView.enqueued) == 1
    assert WebhookDelivery.objects.filter(service="demo", connection="c1").count() == 1


@pytest.mark.django_db
def test_webhook_base_view_refuses_wrong_secret_big_body_and_get(django_capture_on_commit_callbacks, caplog):
    DemoWebhookView.enqueued = []
    with django_capture_on_commit_callbacks(execute=True):
        assert _post("{}", secret="s3cr3t-0123456789abcdefghiX").status_code == 404
        assert _post("{}", conn="other").status_code == 404
        assert _post("x" * 2000).status_code == 413
        assert _post("not json").status_code == 400
    assert "s3cr3t" not in caplog.text
    assert DemoWebhookView.enqueued == []
    assert DemoWebhookView.as_view()(RequestFactory().get("/hook/"), conn="c1", secret="x").status_code == 405
    # nothing was enqueued inside a transaction that is rolled back
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            assert _post('{"a": 1}').status_code == 202
            raise RuntimeError()
