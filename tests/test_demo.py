"""The demo of ``make run``: its bootstrap (on the test database, never demo-data/), config file and simulator list."""
import configparser
import re
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.utils import translation
from django.utils.translation import gettext
from django_scopes import scopes_disabled

from pretix.base.models import Event, Item, Organizer, Quota, Team, User
from pretix.base.settings import GlobalSettingsObject

from demo import run, simulators
from demo.bootstrap import ADMIN_EMAIL, ADMIN_PASSWORD, DEMO_PLUGINS, PAYMENT_PLUGIN, SORTIR_API_TOKEN, SORTIR_API_URL, bootstrap_demo, configure_sortir
from pretix_integrations_core import crypto


def _counts():
    with scopes_disabled():
        return {m.__name__: m.objects.count() for m in (Organizer, Event, User, Team, Item, Quota)}


@pytest.mark.django_db
def test_bootstrap_creates_the_demo_and_is_idempotent(client):
    first = bootstrap_demo()
    assert set(first.created) == {"organizer", "admin", "team", "event"}
    counts = _counts()

    second = bootstrap_demo()
    assert second.created == []
    assert _counts() == counts
    assert (second.organizer.pk, second.event.pk, second.user.pk, second.team.pk) == (
        first.organizer.pk, first.event.pk, first.user.pk, first.team.pk)

    with scopes_disabled():
        event = Event.objects.get(organizer__slug="demo", slug="demo")
        assert event.live
        plugins = event.get_plugins()
        for module in (PAYMENT_PLUGIN, *DEMO_PLUGINS):
            assert plugins.count(module) == 1
        assert PAYMENT_PLUGIN in event.organizer.get_plugins()
        assert "pretix_sortir" in event.organizer.get_plugins()  # event-and-organiser plugin, as bank transfer
        assert event.organizer.settings.get("pretix_sortir_prefill_names", as_type=bool)  # the simulator returns a name
        assert event.settings.locales == ["fr", "en"]
        assert event.items.count() == 3
        assert event.get_payment_providers()["banktransfer"].is_enabled
        assert not GlobalSettingsObject().settings.update_check_perform  # offline: no call to pretix.eu

        user = User.objects.get(email=ADMIN_EMAIL)
        assert user.is_staff and user.is_active and user.check_password(ADMIN_PASSWORD)
        assert user.has_organizer_permission(event.organizer, "organizer.settings.general:write")
        assert user.has_event_permission(event.organizer, event, "event.settings.general:write")

    assert client.login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
    resp = client.get("/control/event/demo/demo/settings/plugins")
    assert resp.status_code == 200
    for module in DEMO_PLUGINS:
        assert f'id="plugin_{module}"' in resp.content.decode()


@pytest.mark.django_db
def test_bootstrap_re_enables_a_disabled_plugin_and_keeps_a_changed_password():
    objs = bootstrap_demo()
    with scopes_disabled():
        objs.event.disable_plugin("pretix_sortir")
        objs.event.save()
        objs.user.set_password("changed-by-the-organiser")
        objs.user.save()

    bootstrap_demo()
    with scopes_disabled():
        objs.event.refresh_from_db()
        objs.user.refresh_from_db()
        assert "pretix_sortir" in objs.event.get_plugins()
        assert objs.user.check_password("changed-by-the-organiser")


@pytest.mark.django_db
def test_configure_sortir_stores_the_token_encrypted_once():
    organizer = bootstrap_demo().organizer
    configure_sortir(organizer, "http://127.0.0.1:8081", "demo-apras-token")
    stored = organizer.settings.get(SORTIR_API_TOKEN, as_type=str)
    assert crypto.is_encrypted(stored) and "demo-apras-token" not in stored
    assert organizer.settings.get(SORTIR_API_URL) == "http://127.0.0.1:8081"

    configure_sortir(organizer, "http://127.0.0.1:8081", "demo-apras-token")
    organizer.settings.flush()
    assert organizer.settings.get(SORTIR_API_TOKEN, as_type=str) == stored
    assert crypto.get_secret(organizer.settings, SORTIR_API_TOKEN) == "demo-apras-token"


def test_config_file_keys_are_generated_once(tmp_path):
    cfg_path = tmp_path / "pretix.cfg"
    run.ensure_config(cfg_path, tmp_path)
    first = configparser.RawConfigParser()
    first.read(cfg_path)
    assert first.get("pretix", "url") == "http://127.0.0.1:8000"
    assert first.getboolean("pretix", "allow_http_to_private_networks")
    assert not first.getboolean("django", "debug")
    assert first.get("database", "backend") == "sqlite3"
    Fernet(first.get("integrations", "encryption_keys").encode())  # a valid key
    assert first.get("integrations", "hash_key")

    run.ensure_config(cfg_path, tmp_path)
    second = configparser.RawConfigParser()
    second.read(cfg_path)
    for option in ("encryption_keys", "hash_key"):
        assert second.get("integrations", option) == first.get("integrations", option)


def test_missing_simulator_modules_are_skipped():
    specs = [
        simulators.Simulator("apras", "APRAS", "pretix_integrations_core.testing.apras", "FakeApras", 0),
        simulators.Simulator("nope", "Nope", "pretix_integrations_core.testing.does_not_exist", "FakeNope", 0),
    ]
    running, skipped = simulators.start_simulators(specs, log=lambda *a: None)
    try:
        assert [r.spec.key for r in running] == ["apras"]
        assert [s.key for s in skipped] == ["nope"]
        assert running[0].url.startswith("http://127.0.0.1:")
    finally:
        simulators.stop_simulators(running)


@pytest.mark.django_db
def test_demo_sortir_ticket_requires_a_card():
    from pretix_sortir.models import SortirProduct

    objs = bootstrap_demo()
    bootstrap_demo()
    with scopes_disabled():
        flagged = SortirProduct.objects.filter(event=objs.event)
        assert flagged.count() == 1 and flagged.get().item.default_price == Decimal("4.50")
        item = flagged.get().item
        assert item.admission and item.personalized  # so each ticket is listed with its own card


@pytest.mark.django_db
def test_demo_organiser_tests_helloasso_and_imports_the_demo_form(client, django_capture_on_commit_callbacks):
    from pretix.base.models import Order

    from demo.bootstrap import configure_helloasso
    from pretix_helloasso_bridge import config
    from pretix_helloasso_bridge.models import RemoteObject
    from pretix_integrations_core.testing.helloasso import DEMO_CLIENT_SECRET, DEMO_PROMO_CODE, FakeHelloAsso

    spec = next(s for s in simulators.SIMULATORS if s.key == "helloasso")
    assert spec.configure == "demo.bootstrap:configure_helloasso" and spec.port == 8082
    objs = bootstrap_demo()
    with FakeHelloAsso(**spec.options) as server:  # the demo's simulator, on a free port
        configure_helloasso(objs.organizer, server.url)
        s = objs.organizer.settings
        stored = s.get(config.CLIENT_SECRET, as_type=str)
        assert crypto.is_encrypted(stored) and DEMO_CLIENT_SECRET not in stored
        assert s.get(config.BASE_URL) == server.url and s.get(config.ORGANIZATION) == "festival-des-lumieres"
        configure_helloasso(objs.organizer, server.url)  # at the next start: nothing re-encrypted
        s.flush()
        assert s.get(config.CLIENT_SECRET, as_type=str) == stored

        assert client.login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        r = client.post("/control/organizer/demo/helloasso/test/", follow=True)
        assert "Festival des Lumières" in r.content.decode()  # "Connection to HelloAsso works: organisation …"

        page = "/control/event/demo/demo/helloasso/"
        assert "Soirée de gala 2026" in client.get(page).content.decode()
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(page + "link/", {"form_ref": "Event/soiree-de-gala-2026"}).status_code == 302
        with translation.override(objs.user.locale):  # the page speaks the admin's language (French in the demo)
            expected = gettext("{created} created, {updated} updated, {cancelled} cancelled, {refunded} refunded, "
                               "{skipped} skipped").format(created=7, updated=0, cancelled=1, refunded=1, skipped=0)
        assert expected in client.get(page).content.decode()

    with scopes_disabled():
        orders = {ro.remote_id: ro.order for ro in RemoteObject.objects.filter(event=objs.event, kind="order").select_related("order")}
        assert len(orders) == 7
        assert objs.event.items.filter(name__icontains="paiement en 3 fois").exists()
        promo = next(o for o in orders.values() if DEMO_PROMO_CODE in o.comment)
        assert promo.status == Order.STATUS_PAID and promo.total == Decimal("52.00")  # 2 x (25 - 5) + 12
        plan = next(o for o in orders.values() if o.email == "karim.haddad@example.net")
        # first of three installments taken: pending in pretix, the ticket valid, 30 of 90 paid
        assert plan.status == Order.STATUS_PENDING and plan.valid_if_pending and plan.total == Decimal("90.00")
        assert [p.amount for p in plan.payments.filter(state="confirmed")] == [Decimal("30.00")]
        assert orders["128450377"].refunds.get().amount == Decimal("15.00")


@pytest.mark.django_db
def test_demo_organiser_connects_the_calendly_simulator_through_its_consent_page(client, django_capture_on_commit_callbacks):
    from urllib.parse import urlsplit

    import requests

    from demo.bootstrap import configure_calendly
    from pretix_crm_bridge.calendly import config
    from pretix_crm_bridge.calendly.models import Prospect
    from pretix_integrations_core.testing.calendly import DEMO_CLIENT_SECRET, FakeCalendly

    spec = next(s for s in simulators.SIMULATORS if s.key == "calendly")
    assert spec.configure == "demo.bootstrap:configure_calendly" and spec.port == 8083
    objs = bootstrap_demo()
    with FakeCalendly(**spec.options) as server:
        configure_calendly(objs.organizer, server.url)
        assert config.get("calendly_auth_url") == server.url and config.get("calendly_client_secret") == DEMO_CLIENT_SECRET
        assert client.login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        r = client.post("/control/organizer/demo/crm/calendly/connect/")
        consent = requests.get(r["Location"], allow_redirects=False, timeout=5)
        assert consent.status_code == 200 and "Allow pretix to access your Calendly account?" in consent.text
        allow = re.search(r"href='(/oauth/authorize\?[^']+approved=1)'", consent.text).group(1).replace("&amp;", "&")
        back = requests.get(server.url + allow, allow_redirects=False, timeout=5)
        callback = urlsplit(back.headers["Location"])
        with django_capture_on_commit_callbacks(execute=True):
            assert client.get(f"{callback.path}?{callback.query}").status_code == 302
        with scopes_disabled():
            emails = set(Prospect.objects.filter(organizer=objs.organizer).values_list("email", flat=True))
        assert {"lea.dubois@example.org", "marc.petit@example.org", "sofia.garcia@example.org"} <= emails
        # somebody books on the simulator's booking page; "Sync now" (or the webhook, in the running demo) brings it in
        booked = requests.post(server.url + "/demo/book", data={"name": "Nora", "email": "nora@example.org", "event": "Group visit"}, timeout=10)
        assert booked.status_code == 200 and "Booked" in booked.text
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/control/organizer/demo/crm/calendly/sync/")
        with scopes_disabled():
            assert Prospect.objects.filter(organizer=objs.organizer, email="nora@example.org").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["billetweb", "weezevent"])
def test_demo_billetweb_and_weezevent_simulators_and_events_import(key, client):
    import importlib

    from pretix_helloasso_bridge.models import RemoteObject
    from pretix_helloasso_bridge.sync import run_sync

    spec = next(s for s in simulators.SIMULATORS if s.key == key)
    assert spec.port in (8087, 8088)
    module, func = spec.configure.split(":")
    configure = getattr(importlib.import_module(module), func)
    fake = getattr(importlib.import_module(spec.module), spec.class_name)
    objs = bootstrap_demo()
    with fake(**(spec.options or {})) as server:
        event = configure(objs.organizer, server.url)
        assert configure(objs.organizer, server.url).pk == event.pk  # idempotent at the next start
        report = run_sync(event)
        assert report.state == "success", report.error
        assert client.login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        r = client.post(f"/control/organizer/demo/helloasso/{key}/test/", follow=True)
        assert "works" in r.content.decode() or "fonctionne" in r.content.decode()
    with scopes_disabled():
        assert RemoteObject.objects.filter(event=event, kind="order").count() == 5


@pytest.mark.django_db
def test_demo_organiser_is_connected_to_the_crm_simulators_and_a_paid_order_reaches_them(client, django_capture_on_commit_callbacks):
    from pretix.base.models import Order

    from demo.bootstrap import configure_invoiceninja, configure_mautic
    from pretix_crm_bridge import config
    from pretix_crm_bridge.sync import InvoiceNinjaSync, MauticSync
    from pretix_integrations_core.testing.invoiceninja import DEMO_API_TOKEN, FakeInvoiceNinja
    from pretix_integrations_core.testing.mautic import DEMO_PASSWORD, FakeMautic
    from tests.crm_utils import make_order, pay, run_queue

    specs = {s.key: s for s in simulators.SIMULATORS}
    assert specs["mautic"].configure == "demo.bootstrap:configure_mautic" and specs["mautic"].port == 8086
    assert specs["invoiceninja"].configure == "demo.bootstrap:configure_invoiceninja" and specs["invoiceninja"].port == 8085
    objs = bootstrap_demo()
    with FakeMautic() as mautic, FakeInvoiceNinja() as ninja:  # the demo's simulators, on free ports
        configure_mautic(objs.organizer, mautic.url)
        configure_invoiceninja(objs.organizer, ninja.url)
        s = objs.organizer.settings
        # the demo organiser is connected: URLs set, credentials encrypted as the connections page stores them
        assert config.mautic_configured(objs.organizer) and config.invoiceninja_configured(objs.organizer)
        assert s.get(config.MAUTIC_URL) == mautic.url and s.get(config.NINJA_URL) == ninja.url
        stored = s.get(config.NINJA_TOKEN, as_type=str)
        assert crypto.is_encrypted(stored) and DEMO_API_TOKEN not in stored
        assert crypto.get_secret(s, config.MAUTIC_PASSWORD) == DEMO_PASSWORD
        configure_invoiceninja(objs.organizer, ninja.url)  # at the next start: nothing re-encrypted
        s.flush()
        assert s.get(config.NINJA_TOKEN, as_type=str) == stored
        # the demo event feeds both, with a segment and a campaign that exist in the simulator
        es = objs.event.settings
        assert es.get(config.MAUTIC_ENABLED, as_type=bool) and es.get(config.NINJA_ENABLED, as_type=bool)
        assert config.segment_ids(es.get(config.MAUTIC_SEGMENTS_PLACED)) == [1] and 1 in mautic.segments
        assert config.segment_ids(es.get(config.MAUTIC_CAMPAIGNS_WELCOME)) == [1] and 1 in mautic.campaigns
        es.set(config.MAUTIC_ENABLED, False)  # the organiser switched Mautic off: a restart keeps that
        configure_mautic(objs.organizer, mautic.url)
        assert not objs.event.settings.get(config.MAUTIC_ENABLED, as_type=bool)
        es.set(config.MAUTIC_ENABLED, True)

        assert client.login(email=ADMIN_EMAIL, password=ADMIN_PASSWORD)
        for system in ("mautic", "invoiceninja"):
            r = client.post(f"/control/organizer/demo/crm/test/{system}/", follow=True)
            assert r.status_code == 200 and "alert-success" in r.content.decode()

        # a demo order marked paid reaches both simulators (pretix's periodic run drains the queue in the demo)
        with scopes_disabled():
            item = objs.event.items.get(default_price=Decimal("16.00"))
        console = []
        mautic.log = ninja.log = console.append  # as the demo's console
        order = make_order(objs.event, item, email="camille@example.org", name=("Camille", "Martin"))
        pay(order)
        run_queue(django_capture_on_commit_callbacks)
        assert any(line.startswith("[Invoice Ninja simulator] invoice DEMO-") and "created: 16.00" in line for line in console)
        assert any(line.startswith("[Invoice Ninja simulator] payment") for line in console)
        assert "[Mautic simulator] contact #1 added to segment 'pretix buyers' (200)" in console
        assert order.status == Order.STATUS_PAID
        [contact] = mautic.contacts.values()
        assert contact["values"]["email"] == "camille@example.org" and mautic.segments[1]["members"] == {contact["id"]}
        [invoice] = ninja.store["invoices"].values()
        assert invoice["status_id"] == "4" and len(ninja.store["payments"]) == 1
        page = client.get(f"/control/event/demo/demo/orders/{order.code}/").content.decode()
        assert f"{mautic.url}/s/contacts/view/{contact['id']}" in page and f"{ninja.url}/invoices/{invoice['id']}/edit" in page
        # the links open the simulators' pages
        import urllib.request
        with urllib.request.urlopen(f"{ninja.url}/invoices/{invoice['id']}/edit") as resp:
            assert order.code in resp.read().decode()
        with urllib.request.urlopen(f"{mautic.url}/s/contacts/view/{contact['id']}") as resp:
            assert "camille@example.org" in resp.read().decode()
        with scopes_disabled():
            from pretix.base.models.datasync import OrderSyncResult
            assert OrderSyncResult.objects.filter(order=order, sync_provider__in=(MauticSync.identifier, InvoiceNinjaSync.identifier)).count() == 3
