"""The Calendly sync against the fake over HTTP: window and pagination, upsert rules, cancel/reschedule, 429, 401, one at a time."""
import datetime
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test import Client
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.signals import periodic_task

from pretix_crm_bridge.calendly import sync as calendly_sync
from pretix_crm_bridge.calendly.client import oauth_store
from pretix_crm_bridge.calendly.models import CalendlyConnection, Meeting, Prospect
from pretix_crm_bridge.webhook_secrets import path_secret
from pretix_integrations_core import crypto
from pretix_integrations_core.models import OAuthToken

from .calendly_utils import connection, oauth_connect, org_url, pat_connect

SOON = datetime.datetime.now(datetime.timezone.utc) + timedelta(days=7)


def prospects(organizer):
    with scopes_disabled():
        return {p.email: p for p in Prospect.objects.filter(organizer=organizer).prefetch_related("meetings")}


def sync_now(client, organizer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(org_url(organizer, "crm/calendly/sync/"))
    assert r.status_code == 302
    return connection(organizer)


@pytest.fixture
def connected(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    """Connected with a personal access token, first sync done (the 4 seeded bookings)."""
    pat_connect(admin_client, organizer, django_capture_on_commit_callbacks)
    calendly.reset()
    return calendly


@pytest.mark.django_db
def test_pagination_of_events_and_invitees(admin_client, organizer, connected, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(calendly_sync, "PAGE_SIZE", 2)
    ev = connected.add_event("Group visit", SOON)
    for n in range(5):
        connected.add_invitee(ev, f"visitor{n}@example.org", f"Visitor {n}")
    for n in range(3):
        connected.add_event(f"Trial {n}", SOON + timedelta(hours=n + 1))  # events without invitees, to page through
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert {f"visitor{n}@example.org" for n in range(5)} <= set(prospects(organizer))
    event_pages = connected.received("GET", r"^/scheduled_events$")
    assert len(event_pages) == 4  # 7 events in the window, 2 per page
    assert event_pages[0].arg("min_start_time") and event_pages[0].arg("max_start_time")
    assert [r.arg("page_token") is not None for r in event_pages] == [False, True, True, True]
    assert len(connected.received("GET", rf"^/scheduled_events/{ev}/invitees$")) == 3  # 5 invitees, 2 per page
    assert connection(organizer).last_sync and not connection(organizer).last_error


@pytest.mark.django_db
def test_events_outside_the_window_are_not_read(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    ev = connected.add_event("Long ago", datetime.datetime.now(datetime.timezone.utc) - timedelta(days=400))
    connected.add_invitee(ev, "old@example.org", "Old")
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert "old@example.org" not in prospects(organizer)


@pytest.mark.django_db
def test_second_booking_adds_a_meeting_and_a_note_not_a_prospect(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    ev = connected.add_event("Follow-up", SOON)
    connected.add_invitee(ev, "GUEST1@Example.org", "Guest One", questions=[{"question": "Your phone number", "answer": "+33 6 12 34 56 78",
                                                                            "position": 0}])
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)  # a second sync changes nothing
    ps = prospects(organizer)
    assert len(ps) == 4
    p = ps["guest1@example.org"]
    assert p.meetings.count() == 2
    assert "booked again: Follow-up" in p.notes and p.notes.count("booked again") == 1
    assert p.phone == "+33 6 12 34 56 78"
    assert {"question": "Company", "answer": "ACME"} in p.answers
    with scopes_disabled():
        assert p.all_logentries().filter(action_type="pretix_crm_bridge.prospect.meeting_added").count() == 1
        assert p.all_logentries().filter(action_type="pretix_crm_bridge.prospect.created").count() == 1


@pytest.mark.django_db
def test_cancellation_and_reschedule_update_the_meeting(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    ev = connected.add_event("Discovery call", SOON, location={"type": "zoom", "join_url": "https://zoom.example/j/1", "status": "pushed"})
    inv = connected.add_invitee(ev, "anna@example.org", "Anna", )
    ev2 = connected.add_event("Studio tour", SOON)
    inv2 = connected.add_invitee(ev2, "ben@example.org", "Ben")
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    with scopes_disabled():
        m = Meeting.objects.get(invitee_uri__endswith=inv)
        assert m.join_url == "https://zoom.example/j/1" and m.status == Meeting.ACTIVE
    # Anna cancels; Ben reschedules (Calendly cancels the old invitee and creates a new one, on a new event)
    connected.cancel_invitee(ev, inv, reason="Sick")
    ev3 = connected.add_event("Studio tour", SOON + timedelta(days=2))
    inv3 = connected.add_invitee(ev3, "ben@example.org", "Ben")
    connected.invitees[ev3][inv3]["old_invitee"] = connected.invitees[ev2][inv2]["uri"]
    connected.cancel_invitee(ev2, inv2, reason="", new_invitee=connected.invitees[ev3][inv3]["uri"])
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    with scopes_disabled():
        m.refresh_from_db()
        assert m.status == Meeting.CANCELED and m.cancel_reason == "Sick"
        old, new = Meeting.objects.get(invitee_uri__endswith=inv2), Meeting.objects.get(invitee_uri__endswith=inv3)
        assert old.status == Meeting.RESCHEDULED and old.new_invitee_uri.endswith(inv3)
        assert new.status == Meeting.ACTIVE and new.prospect_id == old.prospect_id
        assert Prospect.objects.filter(organizer=organizer, email="ben@example.org").count() == 1
        assert m.prospect.all_logentries().filter(action_type="pretix_crm_bridge.prospect.meeting_canceled").count() == 1


@pytest.mark.django_db
def test_429_waits_for_x_ratelimit_reset(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    connected.fail_next(status=429, path=r"^/scheduled_events$", headers={"X-RateLimit-Reset": "1", "X-RateLimit-Remaining": "0"},
                        body={"title": "Too Many Requests", "message": "Rate limit exceeded."})
    started = time.monotonic()
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert time.monotonic() - started >= 1
    reqs = connected.received("GET", r"^/scheduled_events$")
    assert len(reqs) == 2 and reqs[1].received_at - reqs[0].received_at >= 0.95
    assert not conn.last_error


@pytest.mark.django_db
def test_429_beyond_the_budget_is_recorded(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    connected.fail_next(status=429, path=r"^/scheduled_events$", headers={"X-RateLimit-Reset": "55"}, times=3)
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert "slow down" in conn.last_error and conn.running_since is None
    assert len(connected.received("GET", r"^/scheduled_events$")) == 1  # no hammering


@pytest.mark.django_db
def test_401_refreshes_once(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    calendly.expire_access_tokens()
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert not conn.last_error
    assert [r.form["grant_type"] for r in calendly.received("POST", r"^/oauth/token$")] == ["authorization_code", "refresh_token"]
    # a dead grant (refresh token revoked elsewhere): one refresh attempt, then a clear error asking to reconnect
    calendly.expire_access_tokens()
    for rt in list(calendly.refresh_tokens):
        calendly.refresh_tokens[rt] = "revoked"
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert "refused the stored refresh token" in conn.last_error and "connect Calendly again" in conn.last_error
    assert len(calendly.received("POST", r"^/oauth/token$")) == 3


@pytest.mark.django_db
def test_one_sync_per_organiser(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    with scopes_disabled():
        CalendlyConnection.objects.filter(organizer=organizer).update(running_since=now())
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert not connected.received("GET", r"^/scheduled_events$")
    with scopes_disabled():  # a claim left by a dead worker is taken over
        CalendlyConnection.objects.filter(organizer=organizer).update(running_since=now() - timedelta(hours=1))
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert connected.received("GET", r"^/scheduled_events$") and conn.running_since is None


@pytest.mark.django_db
def test_periodic_sync_is_due_by_interval_and_gated_by_the_plugin(admin_client, organizer, connected):
    with scopes_disabled():
        CalendlyConnection.objects.filter(organizer=organizer).update(last_sync=now() - timedelta(minutes=10))
    periodic_task.send(sender=None)  # pretix's cron (runperiodic)
    assert not connected.received("GET", r"^/scheduled_events$")
    with scopes_disabled():
        CalendlyConnection.objects.filter(organizer=organizer).update(last_sync=now() - timedelta(minutes=31))
    periodic_task.send(sender=None)  # pretix's cron (runperiodic)
    assert len(connected.received("GET", r"^/scheduled_events$")) == 1
    with scopes_disabled():  # a recent failure counts as an attempt
        CalendlyConnection.objects.filter(organizer=organizer).update(last_sync=now() - timedelta(minutes=31),
                                                                      last_error_at=now() - timedelta(minutes=5))
    periodic_task.send(sender=None)  # pretix's cron (runperiodic)
    assert len(connected.received("GET", r"^/scheduled_events$")) == 1
    with scopes_disabled():
        CalendlyConnection.objects.filter(organizer=organizer).update(last_sync=now() - timedelta(minutes=31), last_error_at=None)
    organizer.disable_plugin("pretix_crm_bridge")
    organizer.save()
    periodic_task.send(sender=None)  # pretix's cron (runperiodic)
    assert len(connected.received("GET", r"^/scheduled_events$")) == 1


@pytest.mark.django_db
def test_rotated_refresh_token_is_stored_and_never_reused(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    with scope(organizer=organizer):
        for _ in range(3):
            OAuthToken.objects.filter(service="calendly").update(access_expires=now() - timedelta(seconds=1))
            oauth_store(organizer).access_token()
    sent = [r.form["refresh_token"] for r in calendly.received("POST", r"^/oauth/token$") if r.form["grant_type"] == "refresh_token"]
    assert len(sent) == 3 and len(set(sent)) == 3  # the fake refuses a reused one: each renewal used the newest token
    assert all(calendly.refresh_tokens[rt] == "used" for rt in sent)


@pytest.mark.skipif(db_connection.vendor != "postgresql", reason="parallel writers need PostgreSQL (SQLite's shared in-memory test "
                                                                 "database refuses the second writer instead of making it wait)")
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_use_the_refresh_token_once(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    OAuthToken.objects.filter(service="calendly").update(access_expires=now() - timedelta(seconds=1))
    calendly.fail_next(path=r"^/oauth/token$", delay=0.5)  # the first refresh is slow: the second worker arrives meanwhile
    barrier, results, errors = threading.Barrier(2), [None, None], []

    def worker(i):
        try:
            with scope(organizer=organizer):
                barrier.wait()
                results[i] = oauth_store(organizer).access_token()
        except Exception as e:  # noqa: B902 - reported below
            errors.append(e)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    refreshes = [r.form for r in calendly.received("POST", r"^/oauth/token$") if r.form["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1  # the second worker waited for the lock and used the new token
    assert results[0] == results[1] and calendly.access_tokens[results[0]]
    row = OAuthToken.objects.get(service="calendly")
    assert calendly.refresh_tokens[crypto.decrypt(row.refresh_token)] == "active"  # the rotated one is stored
    assert calendly.refresh_tokens[refreshes[0]["refresh_token"]] == "used"


@pytest.mark.django_db
def test_a_disabled_webhook_subscription_is_created_again(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    old = connection(organizer).webhook_uri
    hook = connected.hooks[old.rsplit("/", 1)[1]]
    hook["resource"]["state"] = "disabled"  # Calendly gave up after 24 hours of failed deliveries
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    assert conn.webhook_uri and conn.webhook_uri != old
    assert [h["resource"]["state"] for h in connected.hooks.values()] == ["active"]
    assert crypto.decrypt(conn.webhook_signing_key) == next(iter(connected.hooks.values()))["signing_key"]
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)  # an active one is left alone
    assert connection(organizer).webhook_uri == conn.webhook_uri


@pytest.mark.django_db
def test_a_subscription_calling_an_old_url_is_made_again(admin_client, organizer, connected, django_capture_on_commit_callbacks):
    """The webhook URL changed (it used to be /_crm/calendly/hook/<connection id>/<secret>/): the next sync subscribes the new one."""
    conn = connection(organizer)
    old_uri = conn.webhook_uri
    old_url = f"{settings.SITE_URL}/_crm/calendly/hook/{conn.pk}/an-old-secret/"
    connected.hooks[old_uri.rsplit("/", 1)[1]]["resource"]["callback_url"] = old_url
    conn = sync_now(admin_client, organizer, django_capture_on_commit_callbacks)
    [hook] = connected.hooks.values()
    url = f"{settings.SITE_URL}/_crm/calendly/{organizer.slug}/{path_secret(organizer, 'calendly')}/"
    assert hook["resource"]["callback_url"] == url and hook["resource"]["state"] == "active"
    assert conn.webhook_uri == hook["resource"]["uri"] != old_uri
    assert crypto.decrypt(conn.webhook_signing_key) == hook["signing_key"]
    # a booking delivered to the new URL is taken; the old URL is gone
    ev = connected.add_event("Call", SOON)
    inv = connected.add_invitee(ev, "late@example.org", "Late")
    body, headers = connected.build_delivery("invitee.created", ev, inv, signing_key=hook["signing_key"])
    sig = {"Calendly-Webhook-Signature": headers["Calendly-Webhook-Signature"]}
    assert Client().post(old_url.replace(settings.SITE_URL, ""), data=body, content_type="application/json", headers=sig).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        r = Client().post(url.replace(settings.SITE_URL, ""), data=body, content_type="application/json", headers=sig)
    assert r.status_code == 202 and "late@example.org" in prospects(organizer)
    sync_now(admin_client, organizer, django_capture_on_commit_callbacks)  # a current one is left alone
    assert connection(organizer).webhook_uri == conn.webhook_uri and len(connected.hooks) == 1
    # pretix registers this URL itself: the connections page does not offer to regenerate it
    assert admin_client.post(f"/control/organizer/{organizer.slug}/crm/webhook-url/calendly/").status_code == 404
