"""Billetweb's connection page, Test connection, the event page (pick, link, import), the REST API and permissions."""
import pytest
from django_scopes import scopes_disabled

from pretix.base.models import Order, Organizer, Team

from pretix_helloasso_bridge.models import FormLink, RemoteObject
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.billetweb import DEMO_KEY, DEMO_USER

from .helloasso_utils import team_client

KEY = "pretix_helloasso_bridge_billetweb_secret_key"


def settings_url(org):
    return f"/control/organizer/{org.slug}/helloasso/billetweb/"


def page_url(event, suffix=""):
    return f"/control/event/{event.organizer.slug}/{event.slug}/helloasso/{suffix}"


def run_test(client, organizer):
    return client.post(settings_url(organizer) + "test/", follow=True).content.decode()


@pytest.mark.django_db
def test_settings_saved_key_encrypted_and_masked_and_test_connection(admin_client, organizer, fake_billetweb):
    data = {"pretix_helloasso_bridge_billetweb_user": DEMO_USER, KEY: DEMO_KEY, "pretix_helloasso_bridge_billetweb_url": fake_billetweb.url}
    assert admin_client.post(settings_url(organizer), data, follow=True).status_code == 200
    organizer.settings.flush()
    stored = organizer.settings.get(KEY, as_type=str)
    assert crypto.is_encrypted(stored) and crypto.decrypt(stored) == DEMO_KEY
    page = admin_client.get(settings_url(organizer)).content.decode()
    assert DEMO_KEY not in page and stored not in page and "*****" in page
    admin_client.post(settings_url(organizer), {**data, KEY: "*****"})
    organizer.settings.flush()
    assert crypto.decrypt(organizer.settings.get(KEY, as_type=str)) == DEMO_KEY
    assert "Connection to Billetweb works: 2 events can be imported." in run_test(admin_client, organizer)
    # the key never travels anywhere but in the query string of Billetweb's own address
    assert all(r.arg("key") == DEMO_KEY for r in fake_billetweb.received())


@pytest.mark.django_db
def test_test_connection_outcomes(admin_client, organizer, bw_connected):
    bw_connected.restrict_key(["1350002"])
    assert "Connection to Billetweb works: 1 events can be imported." in run_test(admin_client, organizer)
    bw_connected.restrict_key([])
    assert "it gives access to no event" in run_test(admin_client, organizer)
    bw_connected.challenge_next()
    assert "challenge page" in run_test(admin_client, organizer)
    crypto.set_secret(organizer.settings, KEY, "wrong-key-123")
    page = run_test(admin_client, organizer)
    assert "Billetweb refused the user or the key." in page and "wrong-key-123" not in page
    organizer.settings.delete("pretix_helloasso_bridge_billetweb_user")
    assert "Enter the user and the key" in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_settings_permissions(client, organizer, bw_connected):
    team_client(client, organizer, "events@example.org", all_event_permissions=True)
    assert client.get(settings_url(organizer)).status_code == 403
    assert client.post(settings_url(organizer)).status_code == 403
    assert client.post(settings_url(organizer) + "test/").status_code == 403
    other = Organizer.objects.create(name="Other", slug="other")
    assert client.get(settings_url(other)).status_code in (403, 404)
    assert not bw_connected.received()


@pytest.fixture
def linked(bw_event, admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(page_url(bw_event, "link/"), {"form_ref": "billetweb:1350001"}, follow=True)
    assert "The first import has started." in r.content.decode()
    return bw_event


@pytest.mark.django_db
def test_event_page_lists_billetweb_events_links_and_imports(bw_event, admin_client, django_capture_on_commit_callbacks):
    page = admin_client.get(page_url(bw_event)).content.decode()
    assert "Festival des Lumières 2026 - Soirée de gala (20/06/2026)" in page and "billetweb:1350002" in page
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(page_url(bw_event, "link/"), {"form_ref": "billetweb:1350001"}, follow=True)
    with scopes_disabled():
        link = FormLink.objects.get(event=bw_event)
        assert link.provider == "billetweb" and link.form_ref == "1350001" and link.last_success
        assert RemoteObject.objects.filter(event=bw_event, kind="order").count() == 5
    page = admin_client.get(page_url(bw_event)).content.decode()
    assert "Linked Billetweb event" in page and "5 created" in page and "/_helloasso/webhook/" not in page
    assert "Remove the link to Billetweb" in page


@pytest.mark.django_db
def test_paste_shop_address(bw_event, admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(page_url(bw_event, "link/"), {"form_url": "https://www.billetweb.fr/shop.php?event=ateliers-lumiere-2026"})
    with scopes_disabled():
        assert FormLink.objects.get(event=bw_event).form_ref == "1350002"


@pytest.mark.django_db
def test_permissions_on_every_event_view(linked, client, organizer):
    team_client(client, organizer, "reader@example.org", limit_event_permissions={"event.orders:read": True})
    page = client.get(page_url(linked))
    assert page.status_code == 200 and "Sync now" not in page.content.decode()
    for suffix in ("link/", "unlink/", "options/", "sync/"):
        assert client.post(page_url(linked, suffix)).status_code == 403, suffix
    client.logout()
    team_client(client, organizer, "nobody@example.org", limit_event_permissions={"event.vouchers:read": True})
    assert client.get(page_url(linked)).status_code == 403
    client.logout()
    other = Organizer.objects.create(name="Other", slug="other")
    team_client(client, other, "other@example.org", all_event_permissions=True)
    assert client.get(page_url(linked)).status_code == 404
    with scopes_disabled():
        assert FormLink.objects.filter(event=linked).exists()


@pytest.mark.django_db
def test_sync_now_and_rest_api(linked, admin_client, client, organizer, bw_connected, django_capture_on_commit_callbacks):
    bw_connected.add_order(tickets=["12693"])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(page_url(linked, "sync/"), follow=True)
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 6
        token = Team.objects.create(organizer=organizer, name="API", all_events=True,
                                    limit_event_permissions={"event.orders:read": True, "event.orders:write": True}).tokens.create(name="t").token
    bw_connected.add_order(tickets=["12694"])
    url = f"/api/v1/organizers/{organizer.slug}/events/{linked.slug}/helloasso_syncs/"
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url, {}, HTTP_AUTHORIZATION=f"Token {token}", content_type="application/json")
    assert r.status_code == 202
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 7
    reports = client.get(url, HTTP_AUTHORIZATION=f"Token {token}").json()["results"]
    assert reports[0]["state"] == "success" and reports[0]["orders_created"] == 1


@pytest.mark.django_db
def test_periodic_sync_reads_everything_once_a_day_and_catches_deletions(linked, bw_connected, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils.timezone import now
    from freezegun import freeze_time

    from pretix_helloasso_bridge.models import SyncReport
    from pretix_helloasso_bridge.signals import periodic_sync

    bw_connected.delete_order("264751")
    with freeze_time(now() + timedelta(hours=2)):
        with django_capture_on_commit_callbacks(execute=True):
            periodic_sync(sender=None)
    with scopes_disabled():
        r = SyncReport.objects.filter(event=linked, trigger="periodic").get()
        assert not r.full and r.state == "success"
        assert RemoteObject.objects.get(event=linked, kind="order", remote_id="264751").order.status == Order.STATUS_PAID
    with freeze_time(now() + timedelta(hours=25)):
        with django_capture_on_commit_callbacks(execute=True):
            periodic_sync(sender=None)
    with scopes_disabled():
        r = SyncReport.objects.filter(event=linked, trigger="periodic").first()
        assert r.full and r.state == "success" and r.orders_cancelled == 1
        assert RemoteObject.objects.get(event=linked, kind="order", remote_id="264751").order.status == Order.STATUS_CANCELED


@pytest.mark.django_db
def test_no_webhook_url_for_billetweb_events(linked, client, bw_connected):
    with scopes_disabled():
        secret = FormLink.objects.get(event=linked).get_webhook_secret()
    r = client.post(f"/_helloasso/webhook/{linked.pk}/{secret}/", '{"eventType": "Order", "data": {"id": 264751}}',
                    content_type="application/json")
    assert r.status_code == 404
