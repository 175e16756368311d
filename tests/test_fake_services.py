"""
The fake external services, exercised over real HTTP on 127.0.0.1: auth, happy paths, pagination, error shapes,
duplicates, recorded requests, scripted faults, and webhook signatures checked with the suite's own verifier.
No database needed.
"""
import json
import os

import pytest
import requests

from pretix_integrations_core.testing.fakeserver import FakeServer, json_response, route
from pretix_integrations_core.testing.helloasso import (
    DEMO_CLIENT_ID as HA_CLIENT_ID, DEMO_CLIENT_SECRET as HA_CLIENT_SECRET, DEMO_SIGNATURE_KEY as HA_SIGNATURE_KEY,
)
from pretix_integrations_core.webhooks import verify

SAMPLES = "/work/shared/docs/helloasso-samples"
TIMEOUT = 5


class Sink(FakeServer):
    """Stands in for the plugin's webhook endpoint: records everything, answers ``status``."""
    label = "webhook receiver"
    status = 200

    @route("POST", r"/.*")
    def receive(self, req):
        return json_response({"ok": True}, status=self.status)


@pytest.fixture
def sink():
    with Sink() as server:
        yield server


def _sample(name):
    path = os.path.join(SAMPLES, name)
    if not os.path.exists(path):
        pytest.skip("HelloAsso reference samples not available")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# -- HelloAsso -------------------------------------------------------------------------------------

FORM = "/v5/organizations/festival-des-lumieres/forms/Event/soiree-de-gala-2026"


def ha_token(fake, **data):
    data = data or {"grant_type": "client_credentials", "client_id": HA_CLIENT_ID, "client_secret": HA_CLIENT_SECRET}
    return requests.post(fake.url + "/oauth2/token", data=data, timeout=TIMEOUT)


def ha_session(fake):
    s = requests.Session()
    s.headers["Authorization"] = "Bearer " + ha_token(fake).json()["access_token"]
    return s


def test_helloasso_token_grants(fake_helloasso):
    r = ha_token(fake_helloasso)
    body = r.json()
    assert r.status_code == 200 and set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 1799 and body["access_token"].count(".") == 2
    # HTTP Basic client authentication is accepted too
    r = requests.post(fake_helloasso.url + "/oauth2/token", data={"grant_type": "client_credentials"},
                      auth=(HA_CLIENT_ID, HA_CLIENT_SECRET), timeout=TIMEOUT)
    assert r.status_code == 200
    # refresh: no secret needed, a new refresh token each time, the old one is dead
    r2 = ha_token(fake_helloasso, grant_type="refresh_token", client_id=HA_CLIENT_ID, refresh_token=body["refresh_token"])
    assert r2.status_code == 200 and r2.json()["refresh_token"] != body["refresh_token"]
    reused = ha_token(fake_helloasso, grant_type="refresh_token", client_id=HA_CLIENT_ID, refresh_token=body["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert fake_helloasso.received("POST", r"^/oauth2/token$")[0].form["grant_type"] == "client_credentials"


def test_helloasso_token_errors(fake_helloasso):
    r = ha_token(fake_helloasso, grant_type="client_credentials", client_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0", client_secret="x")
    assert r.status_code == 400 and r.json() == _sample("token-error-invalid-client.json")
    # the message names the client id even when only the secret is wrong
    r = ha_token(fake_helloasso, grant_type="client_credentials", client_id=HA_CLIENT_ID, client_secret="wrong")
    assert r.json() == {"error": "unauthorized_client", "error_description": f"Invalid client_id '{HA_CLIENT_ID}'"}
    as_json = {"grant_type": "client_credentials", "client_id": HA_CLIENT_ID, "client_secret": HA_CLIENT_SECRET}
    r = requests.post(fake_helloasso.url + "/oauth2/token", json=as_json, timeout=TIMEOUT)
    assert r.status_code == 400, "the token endpoint is form-encoded only"


def test_helloasso_bearer_required_and_expiry(fake_helloasso):
    url = fake_helloasso.url + "/v5/organizations/festival-des-lumieres"
    r = requests.get(url, timeout=TIMEOUT)
    assert r.status_code == 401 and r.content == b""
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT).status_code == 401
    s = ha_session(fake_helloasso)
    assert s.get(url, timeout=TIMEOUT).status_code == 200
    fake_helloasso.expire_access_tokens()
    assert s.get(url, timeout=TIMEOUT).status_code == 401


def test_helloasso_answers_match_reference_samples(fake_helloasso):
    s, base = ha_session(fake_helloasso), fake_helloasso.url
    assert s.get(base + "/v5/organizations/festival-des-lumieres", timeout=TIMEOUT).json() == _sample("organization.json")
    # formType is matched case-insensitively and answered in its canonical spelling
    form = s.get(base + FORM.replace("Event", "event") + "/public", timeout=TIMEOUT).json()
    assert form == _sample("form-public.json") and form["formType"] == "Event"
    page1 = s.get(base + FORM + "/orders", params={"withDetails": "true"}, timeout=TIMEOUT).json()
    assert page1 == _sample("orders-page-1.json")
    page2 = s.get(base + FORM + "/orders", params={"withDetails": "true", "continuationToken": page1["pagination"]["continuationToken"]},
                  timeout=TIMEOUT).json()
    assert page2 == _sample("orders-page-2-empty.json")
    assert s.get(base + "/v5/orders/128450311", timeout=TIMEOUT).json() == _sample("order-detail.json")
    missing = s.get(base + "/v5/payments/999999999", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json() == _sample("error-response.json")
    assert fake_helloasso.order_notification(128450311) == _sample("webhook-order.json")
    assert fake_helloasso.payment_notification(104771203) == _sample("webhook-payment.json")
    assert fake_helloasso.payment_notification(104771288) == _sample("webhook-payment-refunded.json")


def test_helloasso_cursor_pagination_over_pages(fake_helloasso):
    s, seen, pages = ha_session(fake_helloasso), [], []
    params = {"pageSize": 2, "sortOrder": "Asc", "withDetails": "true"}
    while True:
        body = s.get(fake_helloasso.url + FORM + "/orders", params=params, timeout=TIMEOUT).json()
        pages.append(body["pagination"])
        if not body["data"]:
            break
        seen += [o["id"] for o in body["data"]]
        params["continuationToken"] = body["pagination"]["continuationToken"]
    assert seen == [128450311, 128450377, 128451002]
    assert [p["pageIndex"] for p in pages] == [1, 2, 3] and all(p["totalCount"] == -1 for p in pages)
    assert pages[-1]["continuationToken"] == pages[-2]["continuationToken"], "the token stays on the final empty page"
    unknown = s.get(fake_helloasso.url + FORM + "/orders", params={"continuationToken": "20200101000000_1"}, timeout=TIMEOUT)
    assert unknown.status_code == 400 and "errors" in unknown.json()


def test_helloasso_list_parameters(fake_helloasso):
    s, url = ha_session(fake_helloasso), fake_helloasso.url + FORM
    plain = s.get(url + "/orders", timeout=TIMEOUT).json()["data"]
    assert [o["id"] for o in plain] == [128451002, 128450377, 128450311], "default sort is Desc"
    assert all("customFields" not in i for o in plain for i in o["items"]), "customFields need withDetails=true"
    assert s.get(url + "/orders", params={"pageSize": 101}, timeout=TIMEOUT).status_code == 400
    assert s.get(url + "/orders", params={"pageIndex": 2}, timeout=TIMEOUT).status_code == 500, "pageIndex past the end (§2.8)"
    window = s.get(url + "/orders", params={"from": "2026-04-04T00:00:00Z", "to": "2026-04-07T15:45:03.9012844Z"}, timeout=TIMEOUT).json()
    assert [o["id"] for o in window["data"]] == [128450377], "`to` is exclusive"
    assert [o["id"] for o in s.get(url + "/orders", params={"userSearchKey": "hugo"}, timeout=TIMEOUT).json()["data"]] == [128450311]
    refunded = s.get(url + "/payments", params={"states": ["Refunded", "Refunding"]}, timeout=TIMEOUT).json()["data"]
    assert [p["id"] for p in refunded] == [104771288] and refunded[0]["order"]["id"] == 128450377
    items = s.get(url + "/items", params={"itemStates": "Canceled"}, timeout=TIMEOUT).json()["data"]
    assert [i["id"] for i in items] == [215905612] and items[0]["payer"]["lastName"] == "Roux"
    other = s.get(fake_helloasso.url + "/v5/organizations/another-asso/forms/Event/x/orders", timeout=TIMEOUT)
    assert other.status_code == 403


def test_helloasso_tests_can_add_orders_and_refunds(fake_helloasso):
    order = fake_helloasso.add_order({"email": "lea@example.org", "firstName": "Léa", "lastName": "Petit", "country": "FRA"},
                                     [{"tier": 14587201, "user": ("Léa", "Petit"), "answers": {5501231: "S"}, "options": [3051871]}])
    payment_id = order["payments"][0]["id"]
    assert order["amount"]["total"] == 3700 and order["payments"][0]["state"] == "Authorized"
    s = ha_session(fake_helloasso)
    assert s.get(f"{fake_helloasso.url}/v5/orders/{order['id']}", timeout=TIMEOUT).json()["items"][0]["options"][0]["optionId"] == 3051871
    fake_helloasso.refund_payment(payment_id, 1200)
    partial = s.get(f"{fake_helloasso.url}/v5/payments/{payment_id}", timeout=TIMEOUT).json()
    assert partial["state"] == "Authorized" and partial["refundOperations"][0]["amount"] == 1200
    fake_helloasso.refund_payment(payment_id, 2500)
    full = s.get(f"{fake_helloasso.url}/v5/payments/{payment_id}", timeout=TIMEOUT).json()
    assert full["state"] == "Refunded" and full["order"]["id"] == order["id"]


def test_helloasso_scripted_429_and_recorded_requests(fake_helloasso):
    s = ha_session(fake_helloasso)
    fake_helloasso.fail_next(status=429, headers={"Retry-After": "2"}, path=r"/orders$")
    r = s.get(fake_helloasso.url + FORM + "/orders", timeout=TIMEOUT)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert s.get(fake_helloasso.url + FORM + "/orders", timeout=TIMEOUT).status_code == 200
    recorded = fake_helloasso.received("GET", r"/orders$")
    assert len(recorded) == 2 and recorded[0].bearer == s.headers["Authorization"].split()[1]


def test_helloasso_notifications_signed_and_unsigned(fake_helloasso, sink):
    payload = fake_helloasso.payment_notification(104771203)
    d = fake_helloasso.send_notification(sink.url + "/hook/secret-path", payload, signature_key=HA_SIGNATURE_KEY)
    got = sink.received("POST", "/hook/secret-path")[0]
    assert d.ok and got.body == d.request_body and json.loads(got.body)["eventType"] == "Payment"
    assert verify(HA_SIGNATURE_KEY, got.body, got.header("x-ha-signature"))
    assert not verify("another-key", got.body, got.header("x-ha-signature"))
    assert not verify(HA_SIGNATURE_KEY, got.body.replace(b"5200", b"5300"), got.header("x-ha-signature"))
    fake_helloasso.send_notification(sink.url + "/hook/association", fake_helloasso.order_notification(128450311))
    assert sink.received("POST", "/hook/association")[0].header("x-ha-signature") is None, "association URLs are not signed"
