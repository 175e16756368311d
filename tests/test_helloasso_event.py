"""The event's HelloAsso page, the webhook URL, the REST API and the periodic task, through pretix's own doors."""
import json

import pytest
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import Event, Order, Organizer, Team

from pretix_helloasso_bridge.models import FormLink, RemoteObject, SyncReport
from pretix_helloasso_bridge.signals import periodic_sync
from pretix_integrations_core.testing.helloasso import DEMO_ORGANIZATION

from .helloasso_utils import team_client

FORM = "Event/soiree-de-gala-2026"
FORM_URL = f"https://www.helloasso.com/associations/{DEMO_ORGANIZATION}/evenements/soiree-de-gala-2026"


def page_url(event, suffix=""):
    return f"/control/event/{event.organizer.slug}/{event.slug}/helloasso/{suffix}"


def imported(event):
    with scopes_disabled():
        return set(RemoteObject.objects.filter(event=event, kind="order").values_list("remote_id", flat=True))


def link(client, event, captured, **data):
    with captured(execute=True):
        return client.post(page_url(event, "link/"), data, follow=True)


@pytest.fixture
def linked(ha_event, admin_client, django_capture_on_commit_callbacks):
    r = link(admin_client, ha_event, django_capture_on_commit_callbacks, form_ref=FORM)
    assert r.status_code == 200
    return ha_event


@pytest.mark.django_db
def test_pick_form_from_api_list_imports_and_page_shows_status(ha_event, admin_client, django_capture_on_commit_callbacks):
    page = admin_client.get(page_url(ha_event)).content.decode()
    assert "Soirée de gala 2026 (Event, Public)" in page  # the list read from the API
    r = link(admin_client, ha_event, django_capture_on_commit_callbacks, form_ref=FORM)
    assert "The first import has started." in r.content.decode()
    assert imported(ha_event) == {"128450311", "128450377", "128451002"}
    page = admin_client.get(page_url(ha_event)).content.decode()
    assert "Soirée de gala 2026" in page and "Active" in page and "3 created, 0 updated, 1 cancelled, 1 refunded, 0 skipped" in page
    with scopes_disabled():
        link_obj = FormLink.objects.get(event=ha_event)
        assert link_obj.last_success and not link_obj.last_error and not link_obj.running_since
        secret = link_obj.get_webhook_secret()
    assert len(secret) >= 32 and f"/_helloasso/webhook/{ha_event.pk}/{secret}/" in page
    assert "HelloAsso" in admin_client.get(f"/control/event/{ha_event.organizer.slug}/{ha_event.slug}/").content.decode()


@pytest.mark.django_db
def test_paste_public_url(ha_event, admin_client, django_capture_on_commit_callbacks):
    r = link(admin_client, ha_event, django_capture_on_commit_callbacks, form_url="https://www.helloasso.com/associations/other/evenements/x")
    assert "This is not the address of a form of your HelloAsso organisation." in r.content.decode()
    assert not imported(ha_event)
    link(admin_client, ha_event, django_capture_on_commit_callbacks, form_url=FORM_URL)
    assert imported(ha_event) == {"128450311", "128450377", "128451002"}


@pytest.mark.django_db
def test_sync_now_and_unlink_keeps_data(linked, admin_client, ha_connected, django_capture_on_commit_callbacks):
    ha_connected.add_order({"email": "new@example.org", "firstName": "Nina", "lastName": "Petit", "country": "BEL"},
                           [{"tier": 14587202, "user": ("Nina", "Petit"), "answers": {5501231: "S"}}], order_id=128460000)
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(page_url(linked, "sync/"), follow=True)
    assert "The sync has started." in r.content.decode()
    assert "128460000" in imported(linked)
    with scopes_disabled():
        assert Order.objects.get(event=linked, email="new@example.org").invoice_address.country == "BE"
        count = Order.objects.filter(event=linked).count()
    r = admin_client.post(page_url(linked, "unlink/"), follow=True)
    assert "Everything imported so far stays in pretix." in r.content.decode()
    with scopes_disabled():
        assert not FormLink.objects.filter(event=linked).exists()
        assert Order.objects.filter(event=linked).count() == count


@pytest.mark.django_db
def test_permissions_on_every_view(linked, client, organizer):
    team_client(client, organizer, "reader@example.org", limit_event_permissions={"event.orders:read": True})
    page = client.get(page_url(linked))
    assert page.status_code == 200 and "Sync now" not in page.content.decode() and "/_helloasso/webhook/" not in page.content.decode()
    for suffix in ("link/", "unlink/", "options/", "sync/"):
        assert client.post(page_url(linked, suffix)).status_code == 403, suffix
    with scopes_disabled():
        assert FormLink.objects.filter(event=linked).exists()
    client.logout()
    team_client(client, organizer, "nobody@example.org", limit_event_permissions={"event.vouchers:read": True})
    assert client.get(page_url(linked)).status_code == 403
    assert client.post(page_url(linked, "sync/")).status_code == 403
    client.logout()
    other = Organizer.objects.create(name="Other", slug="other")
    team_client(client, other, "other@example.org", all_event_permissions=True)
    assert client.get(page_url(linked)).status_code == 404
    assert client.post(page_url(linked, "unlink/")).status_code == 404


@pytest.mark.django_db
def test_page_404_when_plugin_disabled(ha_event, admin_client):
    ha_event.disable_plugin("pretix_helloasso_bridge")
    ha_event.save()
    assert admin_client.get(page_url(ha_event)).status_code == 404


# -- webhook ---------------------------------------------------------------------------------------

def hook_url(live_event, secret):
    return f"/_helloasso/webhook/{live_event.pk}/{secret}/"


@pytest.mark.django_db
def test_webhook_refetches_the_order_and_ignores_duplicates(linked, client, ha_connected, django_capture_on_commit_callbacks):
    with scopes_disabled():
        secret = FormLink.objects.get(event=linked).get_webhook_secret()
    ha_connected.add_order({"email": "late@example.org", "firstName": "Léa", "lastName": "Blanc", "country": "FRA"},
                           [{"tier": 14587201, "user": ("Léa", "Blanc"), "answers": {5501231: "M"}}], order_id=128470000)
    payload = ha_connected.order_notification(128470000)
    payload["data"]["payer"]["email"] = "forged@example.org"  # the payload is a hint only: the order is re-fetched
    body = json.dumps(payload)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(hook_url(linked, secret), body, content_type="application/json")
    assert r.status_code == 202
    assert ha_connected.received("GET", r"^/v5/orders/128470000$")
    with scopes_disabled():
        assert Order.objects.filter(event=linked, email="late@example.org").exists()
        assert not Order.objects.filter(event=linked, email="forged@example.org").exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(hook_url(linked, secret), body, content_type="application/json").status_code == 200
    assert len(ha_connected.received("GET", r"^/v5/orders/128470000$")) == 1
    # a payment notification of a known order: re-fetched, nothing duplicated
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(hook_url(linked, secret), json.dumps(ha_connected.payment_notification(104771203)), content_type="application/json")
    assert r.status_code == 202
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 4


def notify(client, event, payload, captured):
    with scopes_disabled():
        secret = FormLink.objects.get(event=event).get_webhook_secret()
    with captured(execute=True):
        return client.post(hook_url(event, secret), json.dumps(payload), content_type="application/json")


def order_state(event):
    with scopes_disabled():
        return sorted((o.code, o.status, o.total, o.positions.count(), o.payments.count(), o.refunds.count())
                      for o in Order.objects.filter(event=event))


@pytest.mark.django_db
def test_webhooks_out_of_order_are_harmless(linked, client, ha_connected, django_capture_on_commit_callbacks):
    """A Payment notification before its Order one, then an old notification after a newer state: every one re-fetches
    the order, so the result is the API's current state, never duplicated, never rolled back."""
    payer = {"email": "ooo@example.org", "firstName": "Léa", "lastName": "Blanc", "country": "FRA"}
    new = ha_connected.add_order(payer, [{"tier": 14587201, "user": ("Léa", "Blanc")}, {"tier": 14587202, "user": ("Max", "Blanc")}],
                                 order_id=128480000)
    pid = new["payments"][0]["id"]
    old_order_note = ha_connected.order_notification(128480000)
    old_payment_note = ha_connected.payment_notification(pid)
    assert notify(client, linked, old_payment_note, django_capture_on_commit_callbacks).status_code == 202  # the Payment one first
    with scopes_disabled():
        order = Order.objects.get(event=linked, email="ooo@example.org")
        assert order.status == Order.STATUS_PAID and order.positions.count() == 2 and order.payments.count() == 1
    before = order_state(linked)
    assert notify(client, linked, old_order_note, django_capture_on_commit_callbacks).status_code == 202  # then the Order one
    assert order_state(linked) == before
    with scopes_disabled():
        assert SyncReport.objects.filter(event=linked, trigger="webhook").order_by("-pk").first().orders_updated == 0
    # the payment is refunded on HelloAsso and its notification arrives
    ha_connected.refund_payment(pid)
    assert notify(client, linked, ha_connected.payment_notification(pid), django_capture_on_commit_callbacks).status_code == 202
    with scopes_disabled():
        order.refresh_from_db()
        assert order.status == Order.STATUS_CANCELED and order.refunds.count() == 1
    after = order_state(linked)
    # late deliveries of the old notifications (same bodies: acknowledged; a HelloAsso re-send with another body: re-fetched)
    for note in (old_order_note, old_payment_note):
        assert notify(client, linked, note, django_capture_on_commit_callbacks).status_code == 200
        note = json.loads(json.dumps(note))
        note["data"]["isAnonymous"] = True  # not the same body: processed, the order re-fetched
        assert notify(client, linked, note, django_capture_on_commit_callbacks).status_code == 202
    assert order_state(linked) == after  # nothing rolled back to the notification's older state
    assert len(ha_connected.received("GET", r"^/v5/orders/128480000$")) == 5


@pytest.mark.django_db
def test_webhook_dropped_while_a_sync_runs_is_caught_by_the_next_sync(linked, client, ha_connected, django_capture_on_commit_callbacks):
    """Without Celery a notification arriving during a sync is not retried; the change is not lost: the next sync lists
    the order as changed (its new version was never applied)."""
    from pretix_helloasso_bridge.sync import run_sync

    ha_connected.refund_payment(104771203)  # order A, imported with the link
    with scopes_disabled():
        FormLink.objects.filter(event=linked).update(running_since=now())
    notify(client, linked, ha_connected.payment_notification(104771203), django_capture_on_commit_callbacks)
    with scopes_disabled():
        a = Order.objects.get(event=linked, email="claire.martin@example.org")
        assert a.status == Order.STATUS_PAID
        FormLink.objects.filter(event=linked).update(running_since=None)
    report = run_sync(linked, trigger="periodic")
    assert report.orders_cancelled == 1 and report.api_calls <= 4
    with scopes_disabled():
        a.refresh_from_db()
        assert a.status == Order.STATUS_CANCELED


@pytest.mark.django_db
def test_webhook_wrong_secret_refused_and_logged_without_secret(linked, client, ha_connected, caplog, django_capture_on_commit_callbacks):
    body = json.dumps(ha_connected.order_notification(128450311))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(hook_url(linked, "forged-secret-abcdefghijklmnop"), body, content_type="application/json").status_code == 404
        assert client.get(hook_url(linked, "forged-secret-abcdefghijklmnop")).status_code == 405
    assert "forged-secret" not in caplog.text
    assert not ha_connected.received("GET", r"^/v5/orders/")


# -- REST API --------------------------------------------------------------------------------------

@pytest.fixture
def api_token(organizer):
    def make(**perms):
        team = Team.objects.create(organizer=organizer, name="API", all_events=True, **perms)
        return team.tokens.create(name="t").token
    return make


@pytest.mark.django_db
def test_api_starts_a_sync_and_reads_reports(linked, client, api_token, ha_connected, django_capture_on_commit_callbacks):
    url = f"/api/v1/organizers/{linked.organizer.slug}/events/{linked.slug}/helloasso_syncs/"
    writer = api_token(limit_event_permissions={"event.orders:read": True, "event.orders:write": True})
    reader = api_token(limit_event_permissions={"event.orders:read": True})
    nobody = api_token(limit_event_permissions={"event.vouchers:read": True})
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url, {"full": True}, format="json", HTTP_AUTHORIZATION=f"Token {writer}", content_type="application/json")
    assert r.status_code == 202, r.content
    report_id = r.json()["id"]
    r = client.get(url, HTTP_AUTHORIZATION=f"Token {reader}")
    assert r.status_code == 200
    rows = {row["id"]: row for row in r.json()["results"]}
    assert rows[report_id]["state"] == "success" and rows[report_id]["orders_created"] == 0 and rows[report_id]["api_calls"] >= 2
    assert client.post(url, {}, HTTP_AUTHORIZATION=f"Token {reader}", content_type="application/json").status_code == 403
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {nobody}").status_code == 403
    other = Organizer.objects.create(name="Other", slug="other")
    stranger = Team.objects.create(organizer=other, name="API", all_events=True, all_event_permissions=True).tokens.create(name="x").token
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {stranger}").status_code in (403, 404)
    assert client.post(url, {}, HTTP_AUTHORIZATION=f"Token {stranger}", content_type="application/json").status_code in (403, 404)


# -- periodic task ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_periodic_sync_only_for_linked_events_with_the_plugin_and_when_due(
        linked, organizer, ha_connected, django_capture_on_commit_callbacks):
    other = Event.objects.create(organizer=organizer, name="Other", slug="other", date_from=now())
    with scopes_disabled():
        FormLink.objects.create(event=other, form_ref=FORM)  # plugin not active there
    with django_capture_on_commit_callbacks(execute=True):
        periodic_sync(sender=None)
    with scopes_disabled():
        assert SyncReport.objects.filter(event=linked, trigger="periodic", state="success").count() == 1
        assert not SyncReport.objects.filter(event=other).exists()
    with django_capture_on_commit_callbacks(execute=True):
        periodic_sync(sender=None)  # not due again within the hour (the event is 30 days away)
    with scopes_disabled():
        assert SyncReport.objects.filter(event=linked, trigger="periodic").count() == 1


@pytest.mark.django_db
def test_periodic_sync_every_ten_minutes_around_the_event_day(linked, ha_connected, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from freezegun import freeze_time

    linked.date_from = now() + timedelta(hours=20)
    linked.save()
    with django_capture_on_commit_callbacks(execute=True):
        periodic_sync(sender=None)
    with freeze_time(now() + timedelta(minutes=11)):
        with django_capture_on_commit_callbacks(execute=True):
            periodic_sync(sender=None)
    with scopes_disabled():
        assert SyncReport.objects.filter(event=linked, trigger="periodic").count() == 2


@pytest.mark.django_db
def test_pause_and_email_options(linked, admin_client, ha_connected, django_capture_on_commit_callbacks):
    r = admin_client.post(page_url(linked, "options/"), {"send_emails": "on", "paused": "on"}, follow=True)
    assert "Paused" in r.content.decode()
    with scopes_disabled():
        link_obj = FormLink.objects.get(event=linked)
        assert link_obj.send_emails and link_obj.status == FormLink.PAUSED
    with django_capture_on_commit_callbacks(execute=True):
        periodic_sync(sender=None)
    with scopes_disabled():
        assert not SyncReport.objects.filter(event=linked, trigger="periodic").exists()
    admin_client.post(page_url(linked, "options/"), {})
    with scopes_disabled():
        link_obj.refresh_from_db()
        assert not link_obj.send_emails and link_obj.status == FormLink.ACTIVE
