"""
The fake external services, exercised over real HTTP on 127.0.0.1: auth, happy paths, pagination, error shapes,
duplicates, recorded requests, scripted faults, and webhook signatures checked with the suite's own verifier.
No database needed.
"""
import base64
import hashlib
import json
import os
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from pretix_integrations_core.testing.calendly import (
    DEMO_CLIENT_ID as CAL_CLIENT_ID, DEMO_CLIENT_SECRET as CAL_CLIENT_SECRET, DEMO_PERSONAL_ACCESS_TOKEN as CAL_PAT,
    DEMO_WEBHOOK_SIGNING_KEY as CAL_SIGNING_KEY, FakeCalendly,
)
from pretix_integrations_core.testing.docuseal import (
    DEMO_API_KEY as DS_KEY, DEMO_HMAC_SECRET as DS_HMAC, DEMO_SECRET_HEADER as DS_HEADER, DEMO_TEMPLATE_ID, FakeDocuSeal,
)
from pretix_integrations_core.testing.fakeserver import FakeServer, json_response, route
from pretix_integrations_core.testing.helloasso import (
    DEMO_CLIENT_ID as HA_CLIENT_ID, DEMO_CLIENT_SECRET as HA_CLIENT_SECRET, DEMO_SIGNATURE_KEY as HA_SIGNATURE_KEY,
)
from pretix_integrations_core.testing.invoiceninja import DEMO_API_TOKEN as IN_TOKEN, EVENT_CREATE_INVOICE
from pretix_integrations_core.testing.mautic import (
    DEMO_CLIENT_ID as MA_CLIENT_ID, DEMO_CLIENT_SECRET as MA_CLIENT_SECRET, DEMO_PASSWORD as MA_PASSWORD, DEMO_USERNAME as MA_USER,
    DEMO_WEBHOOK_SECRET as MA_WEBHOOK_SECRET, FakeMautic,
)
from pretix_integrations_core.webhooks import BASE64, parse_dotted_header, parse_keyed_header, verify

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


# -- Calendly --------------------------------------------------------------------------------------

def cal(fake, token=CAL_PAT):
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return s


def cal_authorize(fake, verifier="v" * 50):
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    r = requests.get(fake.url + "/oauth/authorize", params={
        "client_id": CAL_CLIENT_ID, "response_type": "code", "redirect_uri": "https://pretix.example/cb", "state": "xyz",
        "code_challenge": challenge, "code_challenge_method": "S256"}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 302 and r.headers["Location"].startswith("https://pretix.example/cb?")
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def cal_exchange(fake, code, verifier="v" * 50, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://pretix.example/cb", "code_verifier": verifier, **extra}
    return requests.post(fake.url + "/oauth/token", data=data, auth=(CAL_CLIENT_ID, CAL_CLIENT_SECRET), timeout=TIMEOUT)


def test_calendly_oauth_code_flow_and_single_use_codes(fake_calendly):
    code = cal_authorize(fake_calendly)
    assert cal_exchange(fake_calendly, code, verifier="w" * 50).status_code == 400, "PKCE verifier is checked"
    code = cal_authorize(fake_calendly)
    r = cal_exchange(fake_calendly, code)
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 7200
    assert body["owner"] == fake_calendly.user_uri and body["organization"] == fake_calendly.organization_uri
    assert isinstance(body["created_at"], int) and body["refresh_token"]
    again = cal_exchange(fake_calendly, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    me = cal(fake_calendly, body["access_token"]).get(fake_calendly.url + "/users/me", timeout=TIMEOUT)
    assert me.status_code == 200 and me.json()["resource"]["current_organization"] == fake_calendly.organization_uri
    bad = requests.post(fake_calendly.url + "/oauth/token", data={"grant_type": "authorization_code", "code": "x"},
                        auth=(CAL_CLIENT_ID, "wrong"), timeout=TIMEOUT)
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_calendly_refresh_tokens_rotate_and_revoke(fake_calendly):
    first = cal_exchange(fake_calendly, cal_authorize(fake_calendly)).json()
    data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": CAL_CLIENT_ID, "client_secret": CAL_CLIENT_SECRET}
    second = requests.post(fake_calendly.url + "/oauth/token", data=data, timeout=TIMEOUT)
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    reused = requests.post(fake_calendly.url + "/oauth/token", data=data, timeout=TIMEOUT)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    token = second.json()["access_token"]
    revoke = {"client_id": CAL_CLIENT_ID, "client_secret": CAL_CLIENT_SECRET}
    assert requests.post(fake_calendly.url + "/oauth/revoke", data=revoke, timeout=TIMEOUT).json()["error"] == "invalid_request"
    assert requests.post(fake_calendly.url + "/oauth/revoke", data={**revoke, "token": token}, timeout=TIMEOUT).status_code == 200
    r = cal(fake_calendly, token).get(fake_calendly.url + "/users/me", timeout=TIMEOUT)
    assert r.status_code == 401 and r.json() == {"title": "Unauthenticated", "message": "The access token is revoked"}


def test_calendly_bearer_check_and_rate_limit_headers(fake_calendly):
    r = requests.get(fake_calendly.url + "/users/me", timeout=TIMEOUT)
    assert r.status_code == 401 and r.json()["title"] == "Unauthenticated"
    token = cal_exchange(fake_calendly, cal_authorize(fake_calendly)).json()["access_token"]
    ok = cal(fake_calendly, token).get(fake_calendly.url + "/users/me", timeout=TIMEOUT)
    assert ok.status_code == 200 and ok.headers["X-RateLimit-Limit"] == "500"
    assert int(ok.headers["X-RateLimit-Remaining"]) < 500 and 0 < int(ok.headers["X-RateLimit-Reset"]) <= 60
    fake_calendly.expire_access_tokens()
    assert cal(fake_calendly, token).get(fake_calendly.url + "/users/me", timeout=TIMEOUT).json()["message"] == "The access token expired"


def test_calendly_rate_limit_429_and_scripted_retry_after():
    with FakeCalendly(rate_limit=2) as fake:
        s = cal(fake)
        assert [s.get(fake.url + "/users/me", timeout=TIMEOUT).status_code for _ in range(3)] == [200, 200, 429]
        limited = s.get(fake.url + "/users/me", timeout=TIMEOUT)
        assert limited.json()["title"] == "Too Many Requests" and limited.headers["X-RateLimit-Remaining"] == "0"
        assert "X-RateLimit-Reset" in limited.headers
    with FakeCalendly() as fake:
        fake.fail_next(status=429, headers={"Retry-After": "1", "X-RateLimit-Reset": "1"}, body={"title": "Too Many Requests", "message": "slow"})
        r = cal(fake).get(fake.url + "/users/me", timeout=TIMEOUT)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert cal(fake).get(fake.url + "/users/me", timeout=TIMEOUT).status_code == 200


def test_calendly_scheduled_events_rules_and_pagination(fake_calendly):
    s, url = cal(fake_calendly), fake_calendly.url + "/scheduled_events"
    missing = s.get(url, timeout=TIMEOUT)
    assert missing.status_code == 400 and missing.json()["title"] == "Invalid Argument" and missing.json()["details"][0]["parameter"]
    other_user = s.get(url, params={"user": fake_calendly.url + "/users/ZZZZ"}, timeout=TIMEOUT)
    assert other_user.status_code == 403 and other_user.json()["title"] == "Permission Denied"
    assert s.get(url, params={"user": fake_calendly.user_uri, "count": 101}, timeout=TIMEOUT).status_code == 400
    names, params, pages = [], {"user": fake_calendly.user_uri, "count": 2, "sort": "start_time:asc"}, 0
    while True:
        body = s.get(url, params=params, timeout=TIMEOUT).json()
        pages += 1
        names += [e["name"] for e in body["collection"]]
        if not body["pagination"]["next_page_token"]:
            assert body["pagination"]["next_page"] is None and body["pagination"]["previous_page_token"]
            break
        assert "page_token=" in body["pagination"]["next_page"]
        params["page_token"] = body["pagination"]["next_page_token"]
    assert pages == 2 and names == ["Intro workshop", "Follow-up call", "Studio visit"]
    by_org = s.get(url, params={"organization": fake_calendly.organization_uri, "invitee_email": "guest4@example.org"}, timeout=TIMEOUT)
    assert [e["name"] for e in by_org.json()["collection"]] == ["Studio visit"]
    event = by_org.json()["collection"][0]
    assert event["invitees_counter"] == {"total": 2, "active": 2, "limit": 1}
    first_page = s.get(body["pagination"]["previous_page"], timeout=TIMEOUT).json()
    assert [e["name"] for e in first_page["collection"]] == ["Intro workshop", "Follow-up call"]


def test_calendly_event_and_invitees(fake_calendly):
    s = cal(fake_calendly)
    event_uuid = list(fake_calendly.events)[2]
    event = s.get(f"{fake_calendly.url}/scheduled_events/{event_uuid}", timeout=TIMEOUT).json()["resource"]
    assert event["uri"].endswith(event_uuid) and event["status"] == "active"
    first = s.get(event["uri"] + "/invitees", params={"count": 1}, timeout=TIMEOUT).json()
    assert len(first["collection"]) == 1 and first["pagination"]["next_page_token"]
    second = s.get(first["pagination"]["next_page"], timeout=TIMEOUT).json()
    assert [i["email"] for i in first["collection"] + second["collection"]] == ["guest3@example.org", "guest4@example.org"]
    invitee = s.get(first["collection"][0]["uri"], timeout=TIMEOUT).json()["resource"]
    assert invitee["event"] == event["uri"] and invitee["first_name"] is None and "tracking" in invitee and invitee["rescheduled"] is False
    missing = s.get(f"{fake_calendly.url}/scheduled_events/NOPE", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json() == {"title": "Resource Not Found", "message": "The server could not find the requested resource."}
    assert s.get(event["uri"] + "/invitees", params={"page_token": "forged"}, timeout=TIMEOUT).status_code == 400


def test_calendly_webhook_subscriptions(fake_calendly, sink):
    s, url = cal(fake_calendly), fake_calendly.url + "/webhook_subscriptions"
    body = {"url": sink.url + "/calendly/hook/1/", "events": ["invitee.created", "invitee.canceled"], "organization": fake_calendly.organization_uri,
            "user": fake_calendly.user_uri, "scope": "user", "signing_key": "per-hook-key"}
    created = s.post(url, json=body, timeout=TIMEOUT)
    hook = created.json()["resource"]
    assert created.status_code == 201 and hook["callback_url"] == body["url"] and hook["state"] == "active" and "signing_key" not in hook
    dup = s.post(url, json=body, timeout=TIMEOUT)
    assert dup.status_code == 409 and dup.json() == {"title": "Already Exists", "message": "Hook with this url already exists"}
    invalid = s.post(url, json={**body, "scope": "user", "user": None, "url": sink.url + "/other"}, timeout=TIMEOUT)
    assert invalid.status_code == 400 and invalid.json()["details"] == [{"parameter": "user", "message": "is required when scope is user"}]
    assert s.get(url, params={"organization": fake_calendly.organization_uri}, timeout=TIMEOUT).status_code == 400
    listed = s.get(url, params={"organization": fake_calendly.organization_uri, "scope": "user", "user": fake_calendly.user_uri}, timeout=TIMEOUT)
    assert [h["uri"] for h in listed.json()["collection"]] == [hook["uri"]]
    event_uuid, invitee_uuid = next((e, next(iter(i))) for e, i in fake_calendly.invitees.items())
    [delivery] = fake_calendly.deliver_to_subscriptions("invitee.created", event_uuid, invitee_uuid)
    t, sigs = parse_keyed_header(delivery.request_headers["Calendly-Webhook-Signature"])
    assert delivery.ok and verify("per-hook-key", delivery.request_body, sigs, timestamp=t, tolerance=180)
    assert s.delete(hook["uri"], timeout=TIMEOUT).status_code == 204
    assert s.get(hook["uri"], timeout=TIMEOUT).status_code == 404
    with FakeCalendly(paid_plan=False) as free:
        r = cal(free).post(free.url + "/webhook_subscriptions", json={**body, "organization": free.organization_uri}, timeout=TIMEOUT)
        assert r.status_code == 403 and r.json()["message"].startswith("Please upgrade your Calendly account")


def test_calendly_signed_deliveries_and_tamper_knobs(fake_calendly, sink):
    event_uuid = list(fake_calendly.events)[0]
    invitee_uuid = next(iter(fake_calendly.invitees[event_uuid]))

    def check(**knobs):
        d = fake_calendly.send_delivery(sink.url + "/hook", "invitee.created", event_uuid, invitee_uuid, **knobs)
        t, sigs = parse_keyed_header(d.request_headers.get("Calendly-Webhook-Signature"))
        return verify(CAL_SIGNING_KEY, d.request_body, sigs, timestamp=t, tolerance=180)

    assert check()
    assert not check(stale=True) and not check(wrong_key=True) and not check(missing_header=True) and not check(malformed_header=True)
    assert not check(timestamp=time.time() + 600), "a t far in the future is refused too"
    received = sink.received("POST", "/hook")[0]
    payload = json.loads(received.body)
    assert payload["event"] == "invitee.created" and payload["payload"]["scheduled_event"]["name"] == "Intro workshop"
    assert received.header("Content-Type") == "application/json" and payload["created_by"] == fake_calendly.user_uri
    fake_calendly.cancel_invitee(event_uuid, invitee_uuid, reason="Ill")
    body, headers = fake_calendly.build_delivery("invitee.canceled", event_uuid, invitee_uuid)
    canceled = json.loads(body)["payload"]
    assert canceled["status"] == "canceled" and canceled["rescheduled"] is False
    assert canceled["cancellation"]["reason"] == "Ill" and canceled["scheduled_event"]["cancellation"]["canceler_type"] == "invitee"
    t, sigs = parse_keyed_header(headers["Calendly-Webhook-Signature"])
    assert verify(CAL_SIGNING_KEY, body, sigs, timestamp=t, tolerance=180)
    assert not verify(CAL_SIGNING_KEY, body.replace(b"Ill", b"Sick"), sigs, timestamp=t, tolerance=180)


# -- DocuSeal --------------------------------------------------------------------------------------

def ds(fake, key=DS_KEY):
    s = requests.Session()
    s.headers["X-Auth-Token"] = key
    return s


def ds_submit(fake, external_id="pretix:demo:concert:ABC12-1", session=None, **extra):
    body = {"template_id": DEMO_TEMPLATE_ID, "send_email": False,
            "submitters": [{"role": "First Party", "email": "jane@example.org", "name": "Jane Doe", "external_id": external_id,
                            "metadata": {"order": "ABC12"}, "values": {"Full Name": "Jane Doe"}}], **extra}
    return (session or ds(fake)).post(fake.api_url + "/submissions", json=body, timeout=TIMEOUT)


def test_docuseal_auth_and_base_path(fake_docuseal):
    assert requests.get(fake_docuseal.url + "/templates", timeout=TIMEOUT).json() == {"error": "Not authenticated"}
    wrong = ds(fake_docuseal, "nope").get(fake_docuseal.url + "/templates", timeout=TIMEOUT)
    assert wrong.status_code == 401
    templates = ds(fake_docuseal).get(fake_docuseal.url + "/templates", timeout=TIMEOUT).json()
    assert [t["name"] for t in templates["data"]] == ["Volunteer agreement", "Workshop participation agreement"]
    with FakeDocuSeal(base_path="/api") as hosted:
        assert hosted.api_url == hosted.url + "/api"
        assert ds(hosted).get(hosted.url + "/api/templates", timeout=TIMEOUT).status_code == 200
        missing = ds(hosted).get(hosted.url + "/templates", timeout=TIMEOUT)
        assert missing.status_code == 404 and missing.json() == {"status": 404}
        assert [r.path for r in hosted.received("GET")] == ["/api/templates", "/templates"]


def test_docuseal_create_and_find_submission(fake_docuseal):
    r = ds_submit(fake_docuseal)
    [submitter] = r.json()
    assert r.status_code == 200 and isinstance(r.json(), list)
    assert submitter["status"] == "awaiting" and submitter["embed_src"] == f"{fake_docuseal.url}/s/{submitter['slug']}"
    assert submitter["role"] == "First Party" and submitter["values"] == [{"field": "Full Name", "value": "Jane Doe"}]
    found = ds(fake_docuseal).get(fake_docuseal.url + "/submitters", params={"external_id": "pretix:demo:concert:ABC12-1"}, timeout=TIMEOUT).json()
    assert [s["id"] for s in found["data"]] == [submitter["id"]] and found["data"][0]["template"]["id"] == DEMO_TEMPLATE_ID
    assert found["pagination"] == {"count": 1, "next": submitter["id"], "prev": submitter["id"]}
    # the server does not enforce external_id uniqueness: looking up first is the client's job
    ds_submit(fake_docuseal)
    found = ds(fake_docuseal).get(fake_docuseal.url + "/submitters", params={"external_id": "pretix:demo:concert:ABC12-1"}, timeout=TIMEOUT).json()
    assert len(found["data"]) == 2
    url = f"{fake_docuseal.url}/submissions/{submitter['submission_id']}"
    sub = ds(fake_docuseal).get(url, timeout=TIMEOUT).json()
    assert sub["status"] == "pending" and sub["source"] == "api" and "documents" not in sub and sub["template"]["name"]
    fake_docuseal.complete_submitter(submitter["id"])
    sub = ds(fake_docuseal).get(url, timeout=TIMEOUT).json()
    assert sub["status"] == "completed" and sub["documents"] and sub["submitters"][0]["completed_at"]
    assert [e["event_type"] for e in sub["submission_events"]] == ["complete_form"]
    again = ds(fake_docuseal).put(f"{fake_docuseal.url}/submitters/{submitter['id']}", json={"name": "J. Doe"}, timeout=TIMEOUT)
    assert again.status_code == 422 and again.json() == {"error": "Submitter has already completed the submission."}


@pytest.mark.parametrize("body,message", [
    ({"submitters": []}, "template_id is required"),
    ({"template_id": 42, "submitters": [{"email": "a@example.org"}]}, "Template not found"),
    ({"template_id": DEMO_TEMPLATE_ID, "submitters": {"email": "a@example.org"}}, "submitters must be a Array"),
    ({"template_id": DEMO_TEMPLATE_ID, "order": "any", "submitters": [{"email": "a@example.org"}]}, "order must be one of preserved, random"),
    ({"template_id": DEMO_TEMPLATE_ID, "submitters": [{"email": "not-an-email"}]}, "email is invalid in `submitters[0]`."),
    ({"template_id": DEMO_TEMPLATE_ID + 1, "submitters": [{"email": "a@example.org", "role": "Volunteer"},
                                                          {"email": "b@example.org", "role": "Volunteer"}]}, "role must be unique"),
    ({"template_id": DEMO_TEMPLATE_ID, "emails": "a@example.org, nope"}, "emails are invalid"),
])
def test_docuseal_validation_errors(fake_docuseal, body, message):
    r = ds(fake_docuseal).post(fake_docuseal.url + "/submissions", json=body, timeout=TIMEOUT)
    assert r.status_code == 422 and r.json() == {"error": message}


def test_docuseal_other_errors(fake_docuseal):
    broken = ds(fake_docuseal).post(fake_docuseal.url + "/submissions", data=b'{"template_id": ', headers={"Content-Type": "application/json"},
                                    timeout=TIMEOUT)
    assert broken.status_code == 422 and broken.json()["error"].startswith("JSON parse error")
    archived = fake_docuseal.add_template("Old", archived=True)
    r = ds(fake_docuseal).post(fake_docuseal.url + "/submissions", json={"template_id": archived, "submitters": [{"email": "a@example.org"}]},
                               timeout=TIMEOUT)
    assert r.json() == {"error": "Template has been archived"}
    assert ds(fake_docuseal).get(fake_docuseal.url + "/submissions/999", timeout=TIMEOUT).json() == {"status": 404}
    fake_docuseal.fail_next(status=429, headers={"Retry-After": "3"}, body={"error": "Too many requests"})
    limited = ds_submit(fake_docuseal)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3" and limited.json() == {"error": "Too many requests"}
    assert len(fake_docuseal.received("POST", r"^/submissions$")) == 3 and not fake_docuseal.submissions


def test_docuseal_testing_key_hint():
    with FakeDocuSeal(testing_api_key="test-key") as fake:
        sub_id = ds_submit(fake).json()[0]["submission_id"]
        r = ds(fake, "test-key").get(f"{fake.url}/submissions/{sub_id}", timeout=TIMEOUT)
        assert r.status_code == 403 and "using testing API key; Use production API key" in r.json()["error"]


def test_docuseal_cursor_pagination_and_archive(fake_docuseal):
    ids = [ds_submit(fake_docuseal, external_id=f"x-{n}").json()[0]["submission_id"] for n in range(3)]
    s, seen, params = ds(fake_docuseal), [], {"limit": 2}
    while True:
        body = s.get(fake_docuseal.url + "/submissions", params=params, timeout=TIMEOUT).json()
        if not body["data"]:
            assert body["pagination"] == {"count": 0, "next": None, "prev": None}
            break
        seen += [d["id"] for d in body["data"]]
        params["after"] = body["pagination"]["next"]
    assert seen == sorted(ids, reverse=True), "newest first, `after` pages towards older ids"
    newer = s.get(fake_docuseal.url + "/submissions", params={"limit": 1, "before": ids[0]}, timeout=TIMEOUT).json()
    assert [d["id"] for d in newer["data"]] == [ids[1]]
    archived = s.delete(f"{fake_docuseal.url}/submissions/{ids[0]}", timeout=TIMEOUT).json()
    assert archived["id"] == ids[0] and archived["archived_at"]
    assert ids[0] not in [d["id"] for d in s.get(fake_docuseal.url + "/submissions", timeout=TIMEOUT).json()["data"]]
    assert s.get(fake_docuseal.url + "/submissions", params={"archived": "true"}, timeout=TIMEOUT).json()["data"][0]["id"] == ids[0]
    assert s.delete(f"{fake_docuseal.url}/submissions/{ids[1]}", params={"permanently": "true"}, timeout=TIMEOUT).status_code == 200
    assert s.get(f"{fake_docuseal.url}/submissions/{ids[1]}", timeout=TIMEOUT).status_code == 404


def test_docuseal_webhooks_custom_header_and_hmac(fake_docuseal, sink):
    submitter = ds_submit(fake_docuseal).json()[0]
    fake_docuseal.complete_submitter(submitter["id"])

    def check(**knobs):
        d = fake_docuseal.send_webhook(sink.url + "/docuseal", "form.completed", submitter["id"], **knobs)
        ts, sigs = parse_dotted_header(d.request_headers.get("X-Docuseal-Signature"))
        return d.request_headers.get(DS_HEADER[0]) == DS_HEADER[1], verify(DS_HMAC, d.request_body, sigs, timestamp=ts, tolerance=300)

    assert check() == (True, True)
    assert check(stale=True) == (True, False) and check(wrong_key=True) == (True, False) and check(omit_signature=True) == (True, False)
    assert check(wrong_secret_header=True) == (False, True) and check(omit_secret_header=True) == (False, True)
    got = sink.received("POST", "/docuseal")[0]
    payload = json.loads(got.body)
    assert payload["event_type"] == "form.completed" and payload["data"]["external_id"] == "pretix:demo:concert:ABC12-1"
    assert payload["data"]["submission"]["status"] == "completed" and got.header("User-Agent") == "DocuSeal.com Webhook"
    assert fake_docuseal.event_data("submission.archived", submitter["submission_id"])["id"] == submitter["submission_id"]
    with FakeDocuSeal(hmac_secret=None) as legacy:
        body, headers = legacy.build_webhook("form.viewed", {"id": 1})
        assert "X-Docuseal-Signature" not in headers and headers[DS_HEADER[0]] == DS_HEADER[1]


# -- Invoice Ninja ---------------------------------------------------------------------------------

def ninja(fake, token=IN_TOKEN):
    s = requests.Session()
    s.headers.update({"X-API-TOKEN": token, "X-Requested-With": "XMLHttpRequest", "Accept": "application/json"})
    s.base = fake.url + "/api/v1"
    return s


def ninja_client(s, **extra):
    body = {"name": "Jane Doe", "id_number": "pretix-cust-42", "country_id": "276",
            "contacts": [{"first_name": "Jane", "last_name": "Doe", "email": "jane@example.org"}], **extra}
    return s.post(s.base + "/clients", json=body, timeout=TIMEOUT)


def ninja_invoice(s, client_id, number="PRETIX-DEMO-00012", **query):
    body = {"client_id": client_id, "number": number, "po_number": "ABC12", "date": "2026-08-01", "uses_inclusive_taxes": True,
            "line_items": [{"product_key": "Workshop ticket", "notes": "Jane Doe", "cost": 119.0, "quantity": 1, "tax_name1": "VAT", "tax_rate1": 19.0}]}
    return s.post(s.base + "/invoices", params=query, json=body, timeout=TIMEOUT)


def test_invoiceninja_token_and_error_formats(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    bad = ninja(fake_invoiceninja, "nope").get(s.base + "/clients", timeout=TIMEOUT)
    assert bad.status_code == 403 and bad.json() == {"message": "Invalid token", "errors": {}}
    assert requests.get(s.base + "/clients", timeout=TIMEOUT).status_code == 403
    assert s.get(s.base + "/clients", timeout=TIMEOUT).json()["data"] == []
    unknown = s.get(s.base + "/clients/VolejRejNm", timeout=TIMEOUT)
    assert unknown.status_code == 400 and unknown.json() == {"message": "No query results for model [App\\Models\\Client]."}
    assert s.get(s.base + "/invoices/123", timeout=TIMEOUT).json() == {"message": "Record with value 123 not found"}
    assert s.get(s.base + "/nothing", timeout=TIMEOUT).json() == {"message": "Route does not exist"}
    assert s.patch(s.base + "/clients", timeout=TIMEOUT).json() == {"message": "Method not supported for this route"}
    # without X-Requested-With / a JSON Accept, Laravel answers HTML (or a redirect for validation errors)
    plain = requests.Session()
    plain.headers["X-API-TOKEN"] = IN_TOKEN
    html = plain.get(s.base + "/clients/VolejRejNm", timeout=TIMEOUT)
    assert html.status_code == 400 and html.headers["Content-Type"].startswith("text/html")
    assert plain.post(s.base + "/invoices", json={}, allow_redirects=False, timeout=TIMEOUT).status_code == 302


def test_invoiceninja_clients_unique_ids_and_contact_replacement(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    r = ninja_client(s, contacts=[{"first_name": "Jane", "email": "jane@example.org"}, {"first_name": "Accounting", "email": "acc@example.org"}])
    client = r.json()["data"]
    assert r.status_code == 200 and isinstance(client["id"], str) and len(client["id"]) == 10 and client["contacts"][0]["is_primary"]
    dup = ninja_client(s)
    assert dup.status_code == 422 and dup.json() == {"message": "The given data was invalid.",
                                                     "errors": {"id_number": ["The id number has already been taken."]}}
    invalid = ninja_client(s, id_number="x", contacts=[{"email": "nope"}]).json()["errors"]
    assert invalid == {"contacts.0.email": ["The contacts.0.email must be a valid email address."]}
    found = s.get(s.base + "/clients", params={"email": "acc@example.org"}, timeout=TIMEOUT).json()["data"]
    assert [c["id"] for c in found] == [client["id"]]
    keep = client["contacts"][0]
    updated = s.put(f"{s.base}/clients/{client['id']}", json={"contacts": [{"id": keep["id"], "email": keep["email"]},
                                                                           {"first_name": "New", "email": "new@example.org"}]}, timeout=TIMEOUT)
    emails = [c["email"] for c in updated.json()["data"]["contacts"]]
    assert emails == ["jane@example.org", "new@example.org"], "contacts left out of a PUT are deleted"
    untouched = s.put(f"{s.base}/clients/{client['id']}", json={"private_notes": "pretix"}, timeout=TIMEOUT).json()["data"]
    assert len(untouched["contacts"]) == 2 and untouched["private_notes"] == "pretix"


def test_invoiceninja_pagination_and_status_filter(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    ids = [ninja_client(s, id_number=f"c{n}", name=f"Client {n}").json()["data"]["id"] for n in range(3)]
    page1 = s.get(s.base + "/clients", params={"per_page": 2}, timeout=TIMEOUT).json()
    assert page1["meta"]["pagination"]["total"] == 3 and page1["meta"]["pagination"]["total_pages"] == 2
    assert set(page1["meta"]["pagination"]["links"]) == {"next"}
    page2 = s.get(page1["meta"]["pagination"]["links"]["next"], timeout=TIMEOUT).json()
    assert [c["id"] for c in page1["data"] + page2["data"]] == ids and set(page2["meta"]["pagination"]["links"]) == {"previous"}
    assert s.delete(f"{s.base}/clients/{ids[0]}", timeout=TIMEOUT).json()["data"]["is_deleted"] is True
    assert len(s.get(s.base + "/clients", timeout=TIMEOUT).json()["data"]) == 3, "lists include deleted records by default"
    assert len(s.get(s.base + "/clients", params={"status": "active"}, timeout=TIMEOUT).json()["data"]) == 2


def test_invoiceninja_invoices_numbers_and_actions(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    client_id = ninja_client(s).json()["data"]["id"]
    invoice = ninja_invoice(s, client_id).json()["data"]
    assert invoice["status_id"] == "1" and invoice["amount"] == 119.0 and invoice["total_taxes"] == 19.0 and invoice["invitations"]
    assert ninja_invoice(s, "VolejRejNm").json()["errors"] == {"client_id": ["The selected client id is invalid."]}
    s.delete(f"{s.base}/invoices/{invoice['id']}", timeout=TIMEOUT)
    dup = ninja_invoice(s, client_id)
    assert dup.status_code == 422 and dup.json()["errors"] == {"number": ["The number has already been taken."]}, "deleted numbers stay taken"
    second = ninja_invoice(s, client_id, number="PRETIX-DEMO-00013", mark_sent="true").json()["data"]
    assert second["status_id"] == "2" and second["balance"] == 119.0
    assert [i["id"] for i in s.get(s.base + "/invoices", params={"number": "PRETIX-DEMO-00013"}, timeout=TIMEOUT).json()["data"]] == [second["id"]]
    paid = s.get(f"{s.base}/invoices/{second['id']}/mark_paid", timeout=TIMEOUT).json()["data"]
    assert paid["status_id"] == "4" and paid["balance"] == 0 and len(fake_invoiceninja.store["payments"]) == 1
    assert s.post(s.base + "/invoices/bulk", json={"action": "mark_paid", "ids": ["VolejRejNm"]}, timeout=TIMEOUT).json() == {"message": "No Invoices Found"}
    third = ninja_invoice(s, client_id, number="PRETIX-DEMO-00014").json()["data"]
    bulk = s.post(s.base + "/invoices/bulk", json={"action": "mark_paid", "ids": [second["id"], third["id"]]}, timeout=TIMEOUT).json()
    assert [i["status_id"] for i in bulk["data"]] == ["4", "4"] and len(fake_invoiceninja.store["payments"]) == 2, "paid invoices are skipped"
    assert s.get(f"{s.base}/invoices/{third['id']}/fly", timeout=TIMEOUT).status_code == 400


def test_invoiceninja_pdf_download(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    invoice = ninja_invoice(s, ninja_client(s).json()["data"]["id"]).json()["data"]
    for url in (f"{s.base}/invoices/{invoice['id']}/download", f"{s.base}/invoice/{invoice['invitations'][0]['key']}/download"):
        pdf = s.get(url, timeout=TIMEOUT)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-") and pdf.headers["Content-Type"] == "application/pdf"
        assert pdf.headers["Content-Disposition"] == 'attachment; filename="PRETIX-DEMO-00012.pdf"'


def test_invoiceninja_payments_idempotency_duplicates_and_refund(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    client_id = ninja_client(s).json()["data"]["id"]
    invoice = ninja_invoice(s, client_id, mark_sent="true").json()["data"]
    body = {"client_id": client_id, "amount": 119.0, "date": "2026-08-02", "type_id": "1", "transaction_reference": "pretix ABC12-P-1",
            "idempotency_key": "pretix:demo:ABC12:P1", "invoices": [{"invoice_id": invoice["id"], "amount": 119.0}]}
    payment = s.post(s.base + "/payments", json=body, timeout=TIMEOUT).json()["data"]
    assert payment["status_id"] == "4" and payment["applied"] == 119.0 and payment["paymentables"][0]["invoice_id"] == invoice["id"]
    assert s.get(f"{s.base}/invoices/{invoice['id']}", timeout=TIMEOUT).json()["data"]["status_id"] == "4"
    again = s.post(s.base + "/payments", json=body, timeout=TIMEOUT)
    assert again.status_code == 422 and again.json()["errors"] == {"idempotency_key": ["The idempotency key has already been taken."]}
    burst = s.post(s.base + "/payments", json={**body, "idempotency_key": "other", "invoices": []}, timeout=TIMEOUT)
    assert burst.status_code == 400 and burst.json() == {"message": "Duplicate request"}
    refund = {"id": payment["id"], "amount": 20.0, "date": "2026-08-03", "invoices": [{"invoice_id": invoice["id"], "amount": 20.0}]}
    refunded = s.post(s.base + "/payments/refund", json=refund, timeout=TIMEOUT).json()["data"]
    assert refunded["refunded"] == 20.0 and refunded["status_id"] == "5"
    after = s.get(f"{s.base}/invoices/{invoice['id']}", timeout=TIMEOUT).json()["data"]
    assert after["balance"] == 20.0 and after["status_id"] == "3"
    too_much = s.post(s.base + "/payments/refund", json={**refund, "amount": 500.0}, timeout=TIMEOUT)
    assert too_much.status_code == 422 and "amount" in too_much.json()["errors"]
    assert s.post(s.base + "/payments/refund", json={**refund, "date": None}, timeout=TIMEOUT).json()["errors"] == {"date": ["The date field is required."]}


def test_invoiceninja_429_has_no_retry_after(fake_invoiceninja):
    s = ninja(fake_invoiceninja)
    fake_invoiceninja.fail_next(status=429, body={"message": "Too many requests"})
    r = s.get(s.base + "/clients", timeout=TIMEOUT)
    assert r.status_code == 429 and r.json() == {"message": "Too many requests"} and "Retry-After" not in r.headers
    assert fake_invoiceninja.received("GET", r"/api/v1/clients$")[0].header("X-API-TOKEN") == IN_TOKEN


def test_invoiceninja_unsigned_webhooks(fake_invoiceninja, sink):
    s = ninja(fake_invoiceninja)
    invoice = ninja_invoice(s, ninja_client(s).json()["data"]["id"]).json()["data"]
    hook = s.post(s.base + "/webhooks", json={"target_url": sink.url + "/ninja/secret/", "event_id": EVENT_CREATE_INVOICE, "format": "JSON",
                                              "rest_method": "post", "headers": {"X-Bridge-Secret": "s3cret"}}, timeout=TIMEOUT).json()["data"]
    assert hook["event_id"] == "2" and hook["headers"] == {"X-Bridge-Secret": "s3cret"}
    assert s.post(s.base + "/webhooks", json={"event_id": "2"}, timeout=TIMEOUT).status_code == 422
    [d] = fake_invoiceninja.fire(EVENT_CREATE_INVOICE, "invoices", invoice["id"])
    got = sink.received("POST", "/ninja/secret/")[0]
    payload = json.loads(got.body)
    assert d.ok and payload["id"] == invoice["id"] and payload["client"]["name"] == "Jane Doe" and "data" not in payload
    assert got.header("X-Bridge-Secret") == "s3cret" and not any("signature" in k.lower() for k in got.headers)
    sink.status = 410
    fake_invoiceninja.fire(EVENT_CREATE_INVOICE, "invoices", invoice["id"])
    assert s.get(f"{s.base}/webhooks/{hook['id']}", timeout=TIMEOUT).json()["data"]["is_deleted"] is True
    assert fake_invoiceninja.fire(EVENT_CREATE_INVOICE, "invoices", invoice["id"]) == []


# -- Mautic ----------------------------------------------------------------------------------------

def mautic(fake, auth=(MA_USER, MA_PASSWORD)):
    s = requests.Session()
    s.auth = auth
    s.base = fake.url + "/api"
    return s


def mautic_new(s, **body):
    return s.post(s.base + "/contacts/new", json={"firstname": "Jane", "lastname": "Doe", "email": "jane@example.org", **body}, timeout=TIMEOUT)


def test_mautic_basic_and_oauth_auth(fake_mautic):
    s = mautic(fake_mautic)
    assert s.get(s.base + "/segments", timeout=TIMEOUT).status_code == 200
    assert fake_mautic.received("GET", "/api/segments")[0].basic_auth == (MA_USER, MA_PASSWORD)
    wrong = mautic(fake_mautic, (MA_USER, "nope")).get(s.base + "/segments", timeout=TIMEOUT)
    assert wrong.status_code == 401 and wrong.json()["errors"][0]["code"] == 401
    assert requests.get(s.base + "/segments", timeout=TIMEOUT).status_code == 401
    bad_client = requests.post(fake_mautic.url + "/oauth/v2/token", data={"grant_type": "client_credentials", "client_id": MA_CLIENT_ID,
                                                                          "client_secret": "x"}, timeout=TIMEOUT)
    assert bad_client.status_code == 400 and bad_client.json() == {
        "errors": [{"code": 400, "message": "The client credentials are invalid", "details": [], "type": "invalid_client"}]}
    token = requests.post(fake_mautic.url + "/oauth/v2/token", data={"grant_type": "client_credentials", "client_id": MA_CLIENT_ID,
                                                                     "client_secret": MA_CLIENT_SECRET}, timeout=TIMEOUT).json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600 and "refresh_token" not in token
    bearer = {"Authorization": "Bearer " + token["access_token"]}
    assert requests.get(s.base + "/segments", headers=bearer, timeout=TIMEOUT).status_code == 200
    invalid = requests.get(s.base + "/segments", headers={"Authorization": "Bearer nope"}, timeout=TIMEOUT).json()["errors"][0]
    assert invalid["message"] == "The access token provided is invalid." and invalid["type"] == "invalid_grant"
    fake_mautic.expire_tokens()
    expired = requests.get(s.base + "/segments", headers=bearer, timeout=TIMEOUT)
    assert expired.status_code == 401 and expired.json()["errors"][0]["message"] == "The access token provided has expired."


def test_mautic_api_and_basic_auth_switches():
    with FakeMautic(api_enabled=False) as fake:
        r = mautic(fake).get(fake.url + "/api/segments", timeout=TIMEOUT)
        assert r.status_code == 403 and r.json()["errors"][0]["type"] == "api_disabled"
        assert r.json()["errors"][0]["message"].startswith("API disabled. You need to enable the API")
    with FakeMautic(basic_auth_enabled=False) as fake:
        r = mautic(fake).get(fake.url + "/api/segments", timeout=TIMEOUT)
        assert r.status_code == 403 and r.json()["errors"][0]["type"] == "access_denied" and "Basic Auth disabled" in r.json()["errors"][0]["message"]


def test_mautic_contact_upsert_by_email(fake_mautic):
    s = mautic(fake_mautic)
    first = mautic_new(s, tags=["pretix", "event-demo", "prospect"], pretix_last_order="ABC12", company="ACME")
    contact = first.json()["contact"]
    assert first.status_code == 201 and first.headers["Location"].endswith(f"/api/contacts/{contact['id']}")
    assert contact["fields"]["all"]["pretix_last_order"] == "ABC12" and contact["fields"]["core"]["email"]["value"] == "jane@example.org"
    again = mautic_new(s, email="JANE@example.org", firstname="", tags="pretix,-prospect", unknown_alias="ignored")
    updated = again.json()["contact"]
    assert again.status_code == 200 and updated["id"] == contact["id"] and "Location" not in again.headers
    assert updated["fields"]["all"]["firstname"] == "Jane", "blank values do not overwrite by default"
    assert [t["tag"] for t in updated["tags"]] == ["pretix", "event-demo"] and "unknown_alias" not in updated["fields"]["all"]
    bad = mautic_new(s, email="not-an-email")
    assert bad.status_code == 400 and bad.json()["errors"][0]["details"] == {"email": ["A valid email is required."]}
    assert len(fake_mautic.contacts) == 1


def test_mautic_edit_search_and_batch(fake_mautic):
    s = mautic(fake_mautic)
    cid = mautic_new(s, company="ACME").json()["contact"]["id"]
    assert s.patch(s.base + "/contacts/999/edit", json={"firstname": "X"}, timeout=TIMEOUT).json()["errors"][0]["message"] == "Item was not found."
    assert s.patch(f"{s.base}/contacts/{cid}/edit", json={"lastname": "Smith"}, timeout=TIMEOUT).json()["contact"]["fields"]["all"]["company"] == "ACME"
    put = s.put(f"{s.base}/contacts/{cid}/edit", json={"email": "jane@example.org", "firstname": "Jane"}, timeout=TIMEOUT).json()["contact"]
    assert put["fields"]["all"]["company"] is None and put["fields"]["all"]["lastname"] is None, "PUT clears fields it is not given"
    assert s.put(s.base + "/contacts/500/edit", json={"email": "new@example.org"}, timeout=TIMEOUT).status_code == 201
    items = [{"email": f"p{n}@example.org"} for n in range(3)] + [{"email": "jane@example.org"}, {"email": "broken"}]
    batch = s.post(s.base + "/contacts/batch/new", json=items, timeout=TIMEOUT)
    assert batch.status_code == 201 and batch.json()["statusCodes"] == [201, 201, 201, 200, 400] and set(batch.json()["errors"]) == {"4"}
    too_many = s.post(s.base + "/contacts/batch/new", json=[{"email": f"x{n}@example.org"} for n in range(201)], timeout=TIMEOUT)
    assert too_many.status_code == 500 and too_many.json()["errors"][0]["message"] == "A max of 200 entities are supported at a time."
    found = s.get(s.base + "/contacts", params={"search": "email:jane@example.org", "limit": 1}, timeout=TIMEOUT).json()
    assert found["total"] == "1" and list(found["contacts"]) == [str(cid)]
    exact = s.get(s.base + "/contacts", params={"where[0][col]": "email", "where[0][expr]": "eq", "where[0][val]": "p1@example.org"}, timeout=TIMEOUT)
    assert [c["fields"]["all"]["email"] for c in exact.json()["contacts"].values()] == ["p1@example.org"]
    assert s.get(s.base + "/contacts", params={"search": "email:nobody@example.org"}, timeout=TIMEOUT).json() == {"total": "0", "contacts": []}
    seen, start = [], 0
    while True:
        page = s.get(s.base + "/contacts", params={"search": "example.org", "start": start, "limit": 2, "orderBy": "email"}, timeout=TIMEOUT).json()
        if not page["contacts"]:
            break
        seen += [c["fields"]["all"]["email"] for c in page["contacts"].values()]
        start += 2
    assert len(seen) == int(page["total"]) == 5 and seen == sorted(seen)


def test_mautic_segments_campaigns_stages_points_notes(fake_mautic):
    s = mautic(fake_mautic)
    cid = mautic_new(s).json()["contact"]["id"]
    for _ in range(2):
        assert s.post(f"{s.base}/segments/1/contact/{cid}/add", timeout=TIMEOUT).json() == {"success": 1}, "adding twice is a no-op success"
    assert fake_mautic.segments[1]["members"] == {cid}
    missing = s.post(f"{s.base}/segments/99/contact/{cid}/add", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json() == {"errors": [{"code": 404, "message": "Item was not found.", "details": [], "type": None}]}
    assert s.post(f"{s.base}/campaigns/1/contact/{cid}/add", timeout=TIMEOUT).json() == {"success": 1}
    assert s.post(f"{s.base}/stages/2/contact/{cid}/add", timeout=TIMEOUT).json() == {"success": 1}
    bulk = s.post(f"{s.base}/segments/2/contacts/add", json={"ids": [cid, 999]}, timeout=TIMEOUT).json()
    assert bulk["details"] == {str(cid): {"success": True}, "999": {"success": False}}
    for _ in range(2):
        s.post(f"{s.base}/contacts/{cid}/points/plus/10", json={"eventName": "pretix order", "actionName": "ABC12 paid"}, timeout=TIMEOUT)
    contact = s.get(f"{s.base}/contacts/{cid}", timeout=TIMEOUT).json()["contact"]
    assert contact["points"] == 20 and contact["stage"]["name"] == "Customer", "points are not idempotent"
    assert s.post(s.base + "/notes/new", json={"text": "x"}, timeout=TIMEOUT).json()["errors"][0]["message"] == "lead ID is mandatory"
    note = s.post(s.base + "/notes/new", json={"lead": cid, "text": "pretix order ABC12 paid (119.00 EUR)", "type": "general"}, timeout=TIMEOUT)
    assert note.status_code == 201 and note.json()["note"]["lead"]["id"] == cid
    assert s.get(f"{s.base}/contacts/{cid}/notes", params={"search": "ABC12"}, timeout=TIMEOUT).json()["total"] == 1
    company = s.post(s.base + "/companies/new", json={"companyname": "ACME", "companycountry": "France"}, timeout=TIMEOUT)
    assert company.status_code == 201 and s.post(s.base + "/companies/new", json={"companyname": "acme"}, timeout=TIMEOUT).status_code == 200
    assert s.post(f"{s.base}/companies/{company.json()['company']['id']}/contact/{cid}/add", timeout=TIMEOUT).json() == {"success": 1}


def test_mautic_rate_limit_and_scripted_retry_after():
    with FakeMautic(rate_limit=2) as fake:
        s = mautic(fake)
        responses = [s.get(fake.url + "/api/segments", timeout=TIMEOUT) for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 429] and responses[0].headers["X-RateLimit-Limit"] == "2"
        assert responses[2].json()["errors"][0]["message"] == "You exceeded the rate limit of 2 API calls per hour."
        assert responses[2].headers["X-RateLimit-Remaining"] == "0" and int(responses[2].headers["X-RateLimit-Reset"]) > time.time()
    with FakeMautic() as fake:
        fake.fail_next(status=429, headers={"Retry-After": "5"}, path=r"^/api/contacts/new$", method="POST")
        s = mautic(fake)
        assert mautic_new(s).headers["Retry-After"] == "5" and mautic_new(s).status_code == 201
        assert len(fake.received("POST", "/api/contacts/new")) == 2


def test_mautic_webhook_signature(fake_mautic, sink):
    s = mautic(fake_mautic)
    cid = mautic_new(s).json()["contact"]["id"]
    payload = {"mautic.lead_post_save_update": [fake_mautic.webhook_entry("mautic.lead_post_save_update", cid)],
               "mautic.lead_points_change": [fake_mautic.webhook_entry("mautic.lead_points_change", cid, points={"old_points": 0, "new_points": 10})]}
    d = fake_mautic.send_webhook(sink.url + "/mautic", payload)
    got = sink.received("POST", "/mautic")[0]
    assert d.ok and got.header("X-Origin-Base-URL") == fake_mautic.url
    assert verify(MA_WEBHOOK_SECRET, got.body, got.header("Webhook-Signature"), encoding=BASE64)
    assert base64.b64decode(got.header("Webhook-Signature")) and json.loads(got.body)["mautic.lead_points_change"][0]["points"]["new_points"] == 10
    assert not verify(MA_WEBHOOK_SECRET, got.body + b" ", got.header("Webhook-Signature"), encoding=BASE64)
    body, headers = fake_mautic.build_webhook(payload, wrong_key=True)
    assert not verify(MA_WEBHOOK_SECRET, body, headers["Webhook-Signature"], encoding=BASE64)
    body, headers = fake_mautic.build_webhook({"mautic.lead_post_delete": [fake_mautic.webhook_entry("mautic.lead_post_delete", cid)]},
                                              missing_signature=True)
    assert "Webhook-Signature" not in headers and json.loads(body)["mautic.lead_post_delete"][0]["id"] == cid
