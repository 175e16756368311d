"""The signed Calendly webhook receiver: deliveries built and signed by the fake Calendly, posted to pretix's URL."""
import datetime
import time
from datetime import timedelta

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from pretix_crm_bridge.calendly.models import Meeting, Prospect
from pretix_crm_bridge.webhook_secrets import path_secret
from pretix_integrations_core.models import WebhookDelivery

from .calendly_utils import connection, oauth_connect

SOON = datetime.datetime.now(datetime.timezone.utc) + timedelta(days=3)


@pytest.fixture
def hooked(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    conn = connection(organizer)
    assert conn.webhook_uri
    ev = calendly.add_event("Discovery call", SOON)
    inv = calendly.add_invitee(ev, "Zoe@Example.org", "Zoé", questions=[{"question": "Phone", "answer": "+33 1 23 45 67 89", "position": 0}])
    calendly.reset()
    return conn, ev, inv


def hook_path(conn, secret=None):
    return f"/_crm/calendly/{conn.organizer.slug}/{secret or path_secret(conn.organizer, 'calendly')}/"


def post(path, body, headers, capture):
    with capture(execute=True):
        return Client().post(path, data=body, content_type="application/json",
                             headers={k: v for k, v in headers.items() if k != "Content-Type"})


def signed(fake, conn, kind, ev, inv, **knobs):
    return fake.build_delivery(kind, ev, inv, signing_key=conn.secret("webhook_signing_key"), **knobs)


def zoe(organizer):
    with scopes_disabled():
        return Prospect.objects.filter(organizer=organizer, email__iexact="zoe@example.org").first()


@pytest.mark.django_db
def test_valid_delivery_creates_the_prospect_at_once(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    conn, ev, inv = hooked
    body, headers = signed(calendly, conn, "invitee.created", ev, inv)
    started = time.monotonic()
    r = post(hook_path(conn), body, headers, django_capture_on_commit_callbacks)
    assert r.status_code == 202 and time.monotonic() - started < 5
    p = zoe(organizer)
    assert p.name == "Zoé" and p.phone == "+33 1 23 45 67 89" and p.status == Prospect.NEW
    with scopes_disabled():
        m = p.meetings.get()
    assert m.event_type_name == "Discovery call" and m.status == Meeting.ACTIVE and m.start
    assert not calendly.received()  # the signed payload is used as is: no API call in the request or the task


@pytest.mark.django_db
def test_duplicate_delivery_is_harmless(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    conn, ev, inv = hooked
    body, headers = signed(calendly, conn, "invitee.created", ev, inv)
    assert post(hook_path(conn), body, headers, django_capture_on_commit_callbacks).status_code == 202
    r = post(hook_path(conn), body, headers, django_capture_on_commit_callbacks)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    # the same booking delivered again with another signature time: upserted, still one prospect and one meeting
    body2, headers2 = signed(calendly, conn, "invitee.created", ev, inv, timestamp=int(time.time()) - 5)
    assert post(hook_path(conn), body2, headers2, django_capture_on_commit_callbacks).status_code in (200, 202)
    with scopes_disabled():
        assert Prospect.objects.filter(organizer=organizer, email__iexact="zoe@example.org").count() == 1
        assert Meeting.objects.filter(prospect__email__iexact="zoe@example.org").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("knobs", [{"wrong_key": True}, {"stale": True}, {"missing_header": True}, {"malformed_header": True},
                                   {"timestamp": int(time.time()) + 600}])
def test_forged_or_stale_deliveries_are_refused(organizer, calendly, hooked, django_capture_on_commit_callbacks, knobs):
    conn, ev, inv = hooked
    body, headers = signed(calendly, conn, "invitee.created", ev, inv, **knobs)
    assert post(hook_path(conn), body, headers, django_capture_on_commit_callbacks).status_code == 403
    assert zoe(organizer) is None and not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_altered_body_is_refused(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    conn, ev, inv = hooked
    body, headers = signed(calendly, conn, "invitee.created", ev, inv)
    altered = body.replace(b"Zoe@Example.org", b"mallory@example.org")
    assert altered != body
    assert post(hook_path(conn), altered, headers, django_capture_on_commit_callbacks).status_code == 403
    with scopes_disabled():
        assert not Prospect.objects.filter(email__in=["mallory@example.org", "Zoe@Example.org"]).exists()


@pytest.mark.django_db
def test_replay_after_the_tolerance_is_refused(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    conn, ev, inv = hooked
    # a delivery captured 4 minutes ago (valid then) and replayed now
    body, headers = signed(calendly, conn, "invitee.created", ev, inv, timestamp=int(time.time()) - 240)
    assert post(hook_path(conn), body, headers, django_capture_on_commit_callbacks).status_code == 403


@pytest.mark.django_db
def test_wrong_path_secret_or_disabled_plugin(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    conn, ev, inv = hooked
    body, headers = signed(calendly, conn, "invitee.created", ev, inv)
    assert post(hook_path(conn, secret="guess"), body, headers, django_capture_on_commit_callbacks).status_code == 404
    organizer.disable_plugin("pretix_crm_bridge")
    organizer.save()
    assert post(hook_path(conn), body, headers, django_capture_on_commit_callbacks).status_code == 404


@pytest.mark.django_db
def test_cancellation_and_unknown_events(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    conn, ev, inv = hooked
    post(hook_path(conn), *signed(calendly, conn, "invitee.created", ev, inv), django_capture_on_commit_callbacks)
    calendly.cancel_invitee(ev, inv, reason="Changed my mind")
    r = post(hook_path(conn), *signed(calendly, conn, "invitee.canceled", ev, inv), django_capture_on_commit_callbacks)
    assert r.status_code == 202
    with scopes_disabled():
        m = Meeting.objects.get(invitee_uri__endswith=inv)
        assert m.status == Meeting.CANCELED and m.cancel_reason == "Changed my mind"
    r = post(hook_path(conn), *signed(calendly, conn, "invitee_no_show.created", ev, inv), django_capture_on_commit_callbacks)
    assert r.status_code == 202  # acknowledged, ignored
    with scopes_disabled():
        assert Meeting.objects.get(invitee_uri__endswith=inv).status == Meeting.CANCELED


@pytest.mark.django_db
def test_app_level_signing_key_is_accepted(organizer, calendly, hooked, django_capture_on_commit_callbacks):
    """OAuth apps may have their hooks signed with the app's key (developer portal) instead of the subscription's."""
    from pretix_crm_bridge.calendly import config
    conn, ev, inv = hooked
    config.set_global("calendly_webhook_signing_key", "app-level-key")
    body, headers = calendly.build_delivery("invitee.created", ev, inv, signing_key="app-level-key")
    assert post(hook_path(conn), body, headers, django_capture_on_commit_callbacks).status_code == 202
    assert zoe(organizer) is not None
