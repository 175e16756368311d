"""CRM bridge: organiser connections, the event's choices, permissions, and the trigger map (enqueue only)."""
import pytest
from django_scopes import scopes_disabled

from pretix.base.models import Event, Team, User

from pretix_crm_bridge import config
from pretix_crm_bridge.sync import InvoiceNinjaSync, MauticSync
from pretix_integrations_core import crypto

from .crm_utils import make_order, pay, queue_rows, run_queue, storefront_order

CONN = "/control/organizer/demo/crm/"
EVENT_PAGE = "/control/event/demo/concert/crm/"


@pytest.fixture
def limited_client(client, organizer, event):
    """A team member with every event permission but no organizer settings permission, and one without event settings."""
    u = User.objects.create_user("staff@example.org", "staff-password")
    t = Team.objects.create(organizer=organizer, name="Staff", all_events=True, limit_event_permissions={"event.orders:read": True})
    t.members.add(u)
    assert client.login(email="staff@example.org", password="staff-password")
    return client


def connection_data(**over):
    data = {
        config.MAUTIC_URL: "", config.MAUTIC_AUTH: config.AUTH_BASIC, config.MAUTIC_USERNAME: "", config.MAUTIC_PASSWORD: "",
        config.MAUTIC_CLIENT_ID: "", config.MAUTIC_CLIENT_SECRET: "", config.NINJA_URL: "", config.NINJA_TOKEN: "",
    }
    data.update(over)
    return data


@pytest.mark.django_db
def test_connections_saved_encrypted_and_masked(admin_client, organizer, fake_mautic, fake_invoiceninja):
    r = admin_client.post(CONN, connection_data(**{
        config.MAUTIC_URL: fake_mautic.url, config.MAUTIC_USERNAME: "demo-mautic-api", config.MAUTIC_PASSWORD: "demo-mautic-password",
        config.NINJA_URL: fake_invoiceninja.url, config.NINJA_TOKEN: "demo-invoiceninja-api-token",
    }), follow=True)
    assert r.status_code == 200
    organizer.settings.flush()
    stored = organizer.settings.get(config.NINJA_TOKEN)
    assert crypto.is_encrypted(stored) and crypto.decrypt(stored) == "demo-invoiceninja-api-token"
    assert crypto.decrypt(organizer.settings.get(config.MAUTIC_PASSWORD)) == "demo-mautic-password"
    page = admin_client.get(CONN).content.decode()
    assert "demo-invoiceninja-api-token" not in page and "demo-mautic-password" not in page and "enc1:" not in page
    assert "*****" in page

    # both tests pass with the saved settings
    r = admin_client.post(CONN + "test/mautic/", follow=True)
    assert "The connection to Mautic works" in r.content.decode()
    r = admin_client.post(CONN + "test/invoiceninja/", follow=True)
    assert "The connection to Invoice Ninja works" in r.content.decode()


@pytest.mark.django_db
def test_connection_test_outcomes(admin_client, organizer, fake_mautic, fake_invoiceninja):
    r = admin_client.post(CONN + "test/mautic/", follow=True)
    assert "The Mautic connection is not set up" in r.content.decode()
    organizer.settings.set(config.NINJA_URL, fake_invoiceninja.url)
    crypto.set_secret(organizer.settings, config.NINJA_TOKEN, "wrong-token")
    r = admin_client.post(CONN + "test/invoiceninja/", follow=True)
    assert "Invoice Ninja refused the credentials (HTTP 403)" in r.content.decode() and "Invalid token" in r.content.decode()

    organizer.settings.set(config.MAUTIC_URL, fake_mautic.url)
    organizer.settings.set(config.MAUTIC_USERNAME, "demo-mautic-api")
    crypto.set_secret(organizer.settings, config.MAUTIC_PASSWORD, "demo-mautic-password")
    fake_mautic.api_enabled = False
    r = admin_client.post(CONN + "test/mautic/", follow=True)
    assert "Mautic refused the credentials (HTTP 403)" in r.content.decode() and "API disabled" in r.content.decode()
    fake_mautic.api_enabled = True
    fake_mautic.fail_next(delay=9)
    r = admin_client.post(CONN + "test/mautic/", follow=True)
    assert "Mautic could not be reached or did not answer in time" in r.content.decode()


@pytest.mark.django_db
def test_mautic_oauth2_connection(admin_client, organizer, fake_mautic):
    r = admin_client.post(CONN, connection_data(**{
        config.MAUTIC_URL: fake_mautic.url, config.MAUTIC_AUTH: config.AUTH_OAUTH2, config.MAUTIC_CLIENT_ID: "demo-mautic-client-id",
        config.MAUTIC_CLIENT_SECRET: "demo-mautic-client-secret",
    }), follow=True)
    assert r.status_code == 200
    r = admin_client.post(CONN + "test/mautic/", follow=True)
    assert "The connection to Mautic works" in r.content.decode()
    assert fake_mautic.received("POST", r"^/oauth/v2/token$")
    crypto.set_secret(organizer.settings, config.MAUTIC_CLIENT_SECRET, "wrong")
    r = admin_client.post(CONN + "test/mautic/", follow=True)
    assert "Mautic refused the credentials (HTTP 400)" in r.content.decode()


@pytest.mark.django_db
def test_connection_form_requires_credentials(admin_client, organizer, fake_mautic):
    r = admin_client.post(CONN, connection_data(**{config.MAUTIC_URL: fake_mautic.url, config.NINJA_URL: "https://invoicing.co"}))
    assert r.status_code == 200
    assert "This field is required with this authentication." in r.content.decode()
    assert "Enter the API token that goes with this URL." in r.content.decode()
    organizer.settings.flush()
    assert not organizer.settings.get(config.MAUTIC_URL)


@pytest.mark.django_db
def test_permissions(limited_client, organizer, event):
    event.enable_plugin("pretix_crm_bridge")
    event.save()
    assert limited_client.get(CONN).status_code == 403
    assert limited_client.post(CONN + "test/mautic/").status_code == 403
    assert limited_client.get(EVENT_PAGE).status_code == 403
    assert limited_client.post(EVENT_PAGE, {config.MAUTIC_ENABLED: "on"}).status_code == 403
    assert limited_client.get(EVENT_PAGE + "mautic-fields/").status_code == 403
    assert limited_client.post(EVENT_PAGE + "mautic-fields/", {"mautic-TOTAL_FORMS": "0", "mautic-INITIAL_FORMS": "0"}).status_code == 403


@pytest.mark.django_db
def test_no_access_across_organizers(admin_client, event):
    from pretix.base.models import Organizer
    with scopes_disabled():
        other = Organizer.objects.create(name="Other", slug="other")
        Event.objects.create(organizer=other, name="X", slug="x", date_from=event.date_from, plugins="pretix_crm_bridge")
    assert admin_client.get("/control/organizer/other/crm/").status_code in (403, 404)
    assert admin_client.get("/control/event/other/x/crm/").status_code in (403, 404)


@pytest.mark.django_db
def test_event_settings_page_choices_and_copy(admin_client, organizer, event, fake_mautic):
    event.enable_plugin("pretix_crm_bridge")
    event.save()
    page = admin_client.get(EVENT_PAGE).content.decode()
    assert "First connect Mautic" in page and "What happens when" in page and "Order paid" in page

    from .crm_utils import connect_mautic
    connect_mautic(organizer, fake_mautic)
    r = admin_client.post(EVENT_PAGE, {
        config.MAUTIC_ENABLED: "on", config.MAUTIC_SEGMENTS_PLACED: "1", config.MAUTIC_SEGMENTS_PAID: "2, 1",
        config.MAUTIC_EVENT_TAG: "", config.CONSENT_LABEL + "_0": "Send me news", config.CONSENT_LABEL + "_1": "",
    }, follow=True)
    assert r.status_code == 200
    event.settings.flush()
    assert event.settings.get(config.MAUTIC_ENABLED, as_type=bool)
    assert config.segment_ids(event.settings.get(config.MAUTIC_SEGMENTS_PAID)) == [2, 1]
    assert config.consent_label(event) == "Send me news"
    assert not event.settings.get(config.NINJA_ENABLED, as_type=bool)  # not connected: cannot be switched on

    r = admin_client.post(EVENT_PAGE, {config.MAUTIC_ENABLED: "on", config.MAUTIC_SEGMENTS_PLACED: "three"})
    assert "Enter numbers separated by commas" in r.content.decode()

    with scopes_disabled():
        copy = Event.objects.create(organizer=organizer, name="Copy", slug="copy", date_from=event.date_from)
        copy.copy_data_from(event)
        copy.settings.flush()
        assert copy.settings.get(config.MAUTIC_ENABLED, as_type=bool)
        assert copy.settings.get(config.MAUTIC_SEGMENTS_PAID) == "2, 1"
        assert config.consent_label(copy) == "Send me news"


@pytest.mark.django_db
def test_event_page_needs_the_plugin(admin_client, event):
    assert admin_client.get(EVENT_PAGE).status_code == 404


@pytest.mark.django_db
def test_signals_only_enqueue_no_http_in_the_request(admin_client, client, crm_event, item, fake_mautic, fake_invoiceninja,
                                                     django_capture_on_commit_callbacks):
    order = storefront_order(client, crm_event, item)
    assert order.status == "n"
    assert fake_mautic.requests == [] and fake_invoiceninja.requests == []  # the buyer's requests
    assert [q.triggered_by for q in queue_rows(order, MauticSync.identifier)] == ["order_placed"]
    assert [q.triggered_by for q in queue_rows(order, InvoiceNinjaSync.identifier)] == ["order_placed"]

    # the admin marks the order paid in the control panel: still no call to any service
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(f"/control/event/demo/concert/orders/{order.code}/transition", {
            "status": "p", "amount": str(order.total), "payment_date": order.datetime.date().isoformat(), "send_email": ""}, follow=True)
    assert r.status_code == 200
    order.refresh_from_db()
    assert order.status == "p"
    assert fake_mautic.requests == [] and fake_invoiceninja.requests == []
    assert [q.triggered_by for q in queue_rows(order, MauticSync.identifier)] == ["order_paid"]  # one pending job per order

    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, MauticSync.identifier) == [] and queue_rows(order, InvoiceNinjaSync.identifier) == []
    assert len(fake_mautic.contacts) == 1 and len(fake_invoiceninja.store["invoices"]) == 1


@pytest.mark.django_db
def test_events_not_feeding_a_system_enqueue_nothing(crm_event, item):
    crm_event.settings.set(config.NINJA_ENABLED, False)
    order = make_order(crm_event, item)
    pay(order)
    assert queue_rows(order, InvoiceNinjaSync.identifier) == []
    assert len(queue_rows(order, MauticSync.identifier)) == 1
    crm_event.disable_plugin("pretix_crm_bridge")
    crm_event.save()
    order2 = make_order(crm_event, item)
    pay(order2)
    assert queue_rows(order2, MauticSync.identifier) == []


@pytest.mark.django_db
def test_health_section_per_system(admin_client, crm_event, item, organizer, fake_mautic, django_capture_on_commit_callbacks):
    from pretix_integrations_core import crypto
    ok = make_order(crm_event, item)
    pay(ok)
    run_queue(django_capture_on_commit_callbacks)
    crypto.set_secret(organizer.settings, config.NINJA_TOKEN, "revoked")
    bad = make_order(crm_event, item, email="john@example.org")
    pay(bad)
    run_queue(django_capture_on_commit_callbacks)
    make_order(crm_event, item, email="anna@example.org")
    pay(make_order(crm_event, item, email="anna@example.org"))  # waiting: the queue has not run yet

    from pretix_crm_bridge.health import organizer_health
    health = {h.system: h for h in organizer_health(organizer)}
    assert health["mautic"].connected and health["mautic"].last_success and health["mautic"].failed == 0
    assert health["mautic"].waiting == 1 and health["invoiceninja"].waiting == 1
    assert health["invoiceninja"].failed == 1 and "Invalid token" in health["invoiceninja"].last_error
    page = admin_client.get(CONN).content.decode()
    assert 'id="crm-health"' in page and "Invalid token" in page and "/datasync/failedjobs/" in page


@pytest.mark.django_db
def test_event_dashboard_widget_counts(admin_client, crm_event, item, organizer, fake_invoiceninja, django_capture_on_commit_callbacks):
    from pretix_integrations_core import crypto
    fake_invoiceninja.duplicate_window = 0  # its burst guard is tested in test_crm_invoiceninja.py
    pay(make_order(crm_event, item))
    pay(make_order(crm_event, item))  # same buyer: one contact, one client, two invoices
    run_queue(django_capture_on_commit_callbacks)
    crypto.set_secret(organizer.settings, config.NINJA_TOKEN, "revoked")
    pay(make_order(crm_event, item, email="john@example.org"))
    run_queue(django_capture_on_commit_callbacks)
    page = " ".join(admin_client.get("/control/event/demo/concert/").content.decode().split())
    assert "CRM bridge" in page
    assert "Mautic: 2 contacts" in page
    assert 'Invoice Ninja: 1 clients, 2 invoices · <span class="text-danger">1 failed</span>' in page


@pytest.mark.django_db
def test_jobs_of_a_deactivated_plugin_are_dropped_not_stuck(crm_event, item, fake_mautic, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(crm_event, item)
    pay(order)
    assert queue_rows(order, MauticSync.identifier) and queue_rows(order, InvoiceNinjaSync.identifier)
    crm_event.disable_plugin("pretix_crm_bridge")
    crm_event.save()
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, MauticSync.identifier) == [] and queue_rows(order, InvoiceNinjaSync.identifier) == []
    assert fake_mautic.requests == [] and fake_invoiceninja.requests == []
