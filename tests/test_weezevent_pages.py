"""Weezevent's connection page, Test connection (never a second login after a refusal), the event page and permissions."""
import pytest
from django_scopes import scopes_disabled

from pretix.base.models import Organizer

from pretix_helloasso_bridge.models import FormLink, RemoteObject
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.weezevent import DEMO_API_KEY, DEMO_PASSWORD, DEMO_USERNAME

from .helloasso_utils import team_client

KEY = "pretix_helloasso_bridge_weezevent_api_secret_key"
PASSWORD = "pretix_helloasso_bridge_weezevent_password_secret"


def settings_url(org):
    return f"/control/organizer/{org.slug}/helloasso/weezevent/"


def page_url(event, suffix=""):
    return f"/control/event/{event.organizer.slug}/{event.slug}/helloasso/{suffix}"


def run_test(client, organizer):
    return client.post(settings_url(organizer) + "test/", follow=True).content.decode()


@pytest.mark.django_db
def test_settings_saved_encrypted_masked_and_token_kept(admin_client, organizer, fake_weezevent):
    data = {KEY: DEMO_API_KEY, "pretix_helloasso_bridge_weezevent_username": DEMO_USERNAME, PASSWORD: DEMO_PASSWORD,
            "pretix_helloasso_bridge_weezevent_url": fake_weezevent.url}
    assert admin_client.post(settings_url(organizer), data, follow=True).status_code == 200
    organizer.settings.flush()
    for name, value in ((KEY, DEMO_API_KEY), (PASSWORD, DEMO_PASSWORD)):
        stored = organizer.settings.get(name, as_type=str)
        assert crypto.is_encrypted(stored) and crypto.decrypt(stored) == value
    page = admin_client.get(settings_url(organizer)).content.decode()
    assert DEMO_PASSWORD not in page and DEMO_API_KEY not in page and "*****" in page
    assert "Connection to Weezevent works: 2 events can be imported." in run_test(admin_client, organizer)
    assert "Connection to Weezevent works" in run_test(admin_client, organizer)
    assert fake_weezevent.login_attempts == 1  # the token obtained once is kept (encrypted)
    organizer.settings.flush()
    assert crypto.is_encrypted(organizer.settings.get("pretix_helloasso_bridge_weezevent_token_secret", as_type=str))


@pytest.mark.django_db
def test_bad_login_no_second_attempt_and_ban_reported(admin_client, organizer, wz_connected):
    crypto.set_secret(organizer.settings, PASSWORD, "wrong-password")
    page = run_test(admin_client, organizer)
    assert "Weezevent refused the API key, the login or the password." in page and "wrong-password" not in page
    page = run_test(admin_client, organizer)
    assert "no new attempt is made" in page
    assert wz_connected.login_attempts == 1
    # someone else used up the attempts: the ban is reported as such
    wz_connected._refusals[DEMO_USERNAME] = 5
    wz_connected._banned_until[DEMO_USERNAME] = 10 ** 12
    data = {KEY: "*****", "pretix_helloasso_bridge_weezevent_username": DEMO_USERNAME, PASSWORD: DEMO_PASSWORD,
            "pretix_helloasso_bridge_weezevent_url": wz_connected.url}
    admin_client.post(settings_url(organizer), data)
    assert "Weezevent blocked logins for this account" in run_test(admin_client, organizer)
    assert "no new attempt is made" in run_test(admin_client, organizer)
    assert wz_connected.login_attempts == 2


@pytest.mark.django_db
def test_settings_permissions(client, organizer, wz_connected):
    team_client(client, organizer, "events@example.org", all_event_permissions=True)
    assert client.get(settings_url(organizer)).status_code == 403
    assert client.post(settings_url(organizer)).status_code == 403
    assert client.post(settings_url(organizer) + "test/").status_code == 403
    other = Organizer.objects.create(name="Other", slug="other")
    assert client.get(settings_url(other)).status_code in (403, 404)
    assert wz_connected.login_attempts == 0


@pytest.fixture
def linked(wz_event, admin_client, django_capture_on_commit_callbacks):
    page = admin_client.get(page_url(wz_event)).content.decode()
    assert "Festival des Lumières 2026 (04/07/2026)" in page and "weezevent:512346" in page
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(page_url(wz_event, "link/"), {"form_ref": "weezevent:512345"}, follow=True)
    assert "The first import has started." in r.content.decode()
    return wz_event


@pytest.mark.django_db
def test_event_page_links_and_imports(linked, admin_client):
    with scopes_disabled():
        link = FormLink.objects.get(event=linked)
        assert link.provider == "weezevent" and link.form_ref == "512345" and link.last_success
        assert RemoteObject.objects.filter(event=linked, kind="order").count() == 5
    page = admin_client.get(page_url(linked)).content.decode()
    assert "Linked Weezevent event" in page and "5 created" in page and "<h1>Weezevent</h1>" in page


@pytest.mark.django_db
def test_permissions_on_every_event_view(linked, client, organizer):
    team_client(client, organizer, "reader@example.org", limit_event_permissions={"event.orders:read": True})
    page = client.get(page_url(linked))
    assert page.status_code == 200 and "Sync now" not in page.content.decode()
    for suffix in ("link/", "unlink/", "options/", "sync/"):
        assert client.post(page_url(linked, suffix)).status_code == 403, suffix
    client.logout()
    other = Organizer.objects.create(name="Other", slug="other")
    team_client(client, other, "other@example.org", all_event_permissions=True)
    assert client.get(page_url(linked)).status_code == 404
