"""
Newcomer polish of the Sortir! plugin: error reports without card numbers, the organiser menu entry of an
event-and-organiser plugin, pre-filling off by default, translated reasons in the order log, the demo's quiet
logs and the APRAS simulator's console lines.
"""
import logging
import sys
import time
import warnings

import pytest
import requests
from django.apps import apps as django_apps
from django.core.signals import got_request_exception
from django.db.models.signals import pre_save
from django.test import Client
from django.utils import translation
from django.views.debug import ExceptionReporter
from django_scopes import scopes_disabled

from pretix.base.models import Event, Order, Organizer
from pretix.base.services.orders import cancel_order
from pretix.control.signals import nav_organizer

from pretix_integrations_core.testing.apras import FakeApras
from pretix_sortir import signals as sortir_signals
from pretix_sortir.models import CardUsage
from tests.sortir_utils import VALID, add_to_cart, base, checkout, csrf_token

SUBSTITUTE = "********************"


# -- error reports ---------------------------------------------------------------------------------

class _Boom(RuntimeError):
    pass


@pytest.fixture
def failing_hold():
    """A database failure while the card is being held: the exception leaves pretix's checkout view as a 500."""
    def explode(sender, instance, **kwargs):
        raise _Boom("database went away")

    pre_save.connect(explode, sender=CardUsage, dispatch_uid="test_failing_hold")
    yield
    pre_save.disconnect(sender=CardUsage, dispatch_uid="test_failing_hold")


@pytest.fixture
def captured_exceptions():
    caught = []

    def record(sender, request, **kwargs):
        caught.append((request, sys.exc_info()))

    got_request_exception.connect(record, dispatch_uid="test_capture_exceptions")
    yield caught
    got_request_exception.disconnect(dispatch_uid="test_capture_exceptions")


def _assert_no_card(text, *cards):
    for card in cards:
        assert card not in text


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["1000000001", "1000 0000 01"])
def test_checkout_500_report_hides_the_card_in_post_and_frame_locals(sortir_event, sortir_item, failing_hold,
                                                                     captured_exceptions, settings, typed):
    settings.DEBUG = True  # Django's technical 500 page, as a developer or a bug report would show it
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False  # pretix's test settings re-raise instead
    client = Client(raise_request_exception=False)
    cps = add_to_cart(client, sortir_event, sortir_item)
    key = f"{cps[0].pk}-pretix_sortir_card"
    r = client.post(f"{base(sortir_event)}/checkout/questions/",
                    {"email": "buyer@example.org", "email_repeat": "buyer@example.org", key: typed})
    assert r.status_code == 500
    page = r.content.decode()
    assert "_Boom" in page and "hold_card" in page  # the report shows the frame that had the card in its locals
    assert key in page and SUBSTITUTE in page
    _assert_no_card(page, typed, VALID)

    # The e-mail to the ADMINS (production: DEBUG off), in its HTML and text forms, from the same exception.
    settings.DEBUG = False
    (request, exc_info), = captured_exceptions
    reporter = ExceptionReporter(request, *exc_info, is_email=True)
    for report in (reporter.get_traceback_html(), reporter.get_traceback_text()):
        assert "hold_card" in report and SUBSTITUTE in report
        _assert_no_card(report, typed, VALID)
    frames = {f["function"]: dict(f["vars"]) for f in reporter.get_traceback_frames()}
    assert set(frames["hold_card"]) >= {"card", "raw_card"}
    assert SUBSTITUTE in frames["hold_card"]["card"] and SUBSTITUTE in frames["hold_card"]["raw_card"]


@pytest.mark.django_db
def test_live_card_check_500_report_hides_the_card(sortir_event, sortir_item, failing_hold, captured_exceptions, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    client = Client(raise_request_exception=False)
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = client.post(f"{base(sortir_event)}/sortir/check/",
                    {"position": cps[0].pk, "card": VALID, "csrfmiddlewaretoken": csrf_token(client, sortir_event)})
    assert r.status_code == 500
    (request, exc_info), = captured_exceptions
    reporter = ExceptionReporter(request, *exc_info, is_email=True)
    text = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert "hold_card" in text
    _assert_no_card(text, VALID)


# -- organiser menu entry ----------------------------------------------------------------------------

def test_organizer_menu_entry_uses_no_deprecated_path():
    # pretix warns when an event-level plugin connects to nav_organizer; connecting our receiver again must not.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nav_organizer.connect(sortir_signals.nav_organizer_settings, dispatch_uid="pretix_sortir_nav_organizer")
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.django_db
def test_enabling_on_the_event_page_enables_it_for_the_organiser_and_shows_the_menu_entry(admin_client, organizer, event):
    settings_link = f"/control/organizer/{organizer.slug}/sortir/"
    assert settings_link not in admin_client.get(f"/control/organizer/{organizer.slug}/edit").content.decode()

    # pretix's own event plugin page
    r = admin_client.post(f"/control/event/{organizer.slug}/{event.slug}/settings/plugins",
                          {"plugin:pretix_sortir": "enable"}, follow=True)
    assert r.status_code == 200
    with scopes_disabled():
        organizer.refresh_from_db()
        event.refresh_from_db()
    assert "pretix_sortir" in event.get_plugins() and "pretix_sortir" in organizer.get_plugins()
    page = admin_client.get(f"/control/organizer/{organizer.slug}/edit").content.decode()
    assert settings_link in page

    # pretix's organiser plugin page lists the plugin with its settings link
    page = admin_client.get(f"/control/organizer/{organizer.slug}/settings/plugins").content.decode()
    assert settings_link in page

    # disabling it for the organiser (pretix's page) disables it on the events too: no half-active plugin
    admin_client.post(f"/control/organizer/{organizer.slug}/settings/plugins", {"plugin:pretix_sortir": "disable"})
    with scopes_disabled():
        organizer.refresh_from_db()
        event.refresh_from_db()
    assert "pretix_sortir" not in organizer.get_plugins() and "pretix_sortir" not in event.get_plugins()
    assert settings_link not in admin_client.get(f"/control/organizer/{organizer.slug}/edit").content.decode()


@pytest.mark.django_db
def test_event_signals_need_the_organiser_activation(sortir_event, organizer):
    from pretix.base.signals import is_receiver_active

    assert "pretix_sortir" in organizer.get_plugins()  # enabling on the event from code enabled it for the organiser
    assert is_receiver_active(sortir_event, sortir_signals.on_order_paid)
    organizer.disable_plugin("pretix_sortir")
    organizer.save()
    with scopes_disabled():
        event = Event.objects.get(pk=sortir_event.pk)
    assert not is_receiver_active(event, sortir_signals.on_order_paid)


@pytest.mark.django_db
def test_migration_enables_the_plugin_for_organisers_that_use_it(organizer, event):
    import importlib

    migration = importlib.import_module("pretix_sortir.migrations.0003_active_on_organizers")
    with scopes_disabled():
        other = Organizer.objects.create(name="Other", slug="other")
        Event.objects.filter(pk=event.pk).update(plugins="pretix.plugins.banktransfer,pretix_sortir")
        Organizer.objects.filter(pk=organizer.pk).update(plugins="pretix.plugins.banktransfer")
        migration.activate_on_organizers(django_apps, None)
        migration.activate_on_organizers(django_apps, None)  # idempotent
    organizer.refresh_from_db()
    other.refresh_from_db()
    assert organizer.get_plugins() == ["pretix.plugins.banktransfer", "pretix_sortir"]
    assert other.get_plugins() == []


# -- pre-fill default, log reasons ------------------------------------------------------------------

@pytest.mark.django_db
def test_prefill_is_off_by_default(client, sortir_event, sortir_item, fake_apras, organizer):
    fake_apras.names[VALID] = ("Camille", "Martin")
    order = checkout(client, sortir_event, sortir_item, [VALID])
    with scopes_disabled():
        assert order.positions.get().attendee_name_cached in (None, "")


@pytest.mark.django_db
def test_order_log_shows_the_release_reason_translated(client, admin_client, sortir_event, sortir_item):
    order = checkout(client, sortir_event, sortir_item, [VALID])
    with scopes_disabled():
        cancel_order(order.pk)
        order = Order.objects.get(pk=order.pk)
        entry = order.all_logentries().get(action_type="pretix_sortir.usage.released")
        assert entry.display() == "Sortir! card •••• 0001 of ticket #1 released (order canceled)."
        with translation.override("fr"):
            from django.utils.translation import pgettext
            assert f"({pgettext('sortir_reason', 'order canceled')})" in entry.display()
    page = admin_client.get(f"/control/event/{order.event.organizer.slug}/{order.event.slug}/orders/{order.code}/").content.decode()
    assert "released (order canceled)." in page


# -- demo and simulator -----------------------------------------------------------------------------

@pytest.mark.django_db
def test_demo_filter_drops_only_the_port_only_origin_warning(client, caplog, admin_user):
    from demo.settings import SameOriginOtherPortFilter

    log = logging.getLogger("pretix.control.views.auth")
    flt = SameOriginOtherPortFilter(site_url="http://example.com:8000")
    log.addFilter(flt)
    try:
        with caplog.at_level(logging.WARNING, logger="pretix.control.views.auth"):
            client.post("/control/login", {"email": admin_user.email, "password": "x", "origin": "http://example.com:8000"})
            assert client.post("/control/login/bad_origin", {"origin": "http://example.com:8000"}).status_code == 200
            assert not [r for r in caplog.records if "unexpected origin" in r.getMessage()]
            client.post("/control/login", {"email": admin_user.email, "password": "x", "origin": "http://evil.example.org"})
            assert [r for r in caplog.records if "unexpected origin" in r.getMessage()]
    finally:
        log.removeFilter(flt)


def test_apras_simulator_prints_grants_and_no_traceback_for_a_client_that_gave_up(capfd):
    lines = []
    with FakeApras(slow_cards=("5555555555",), slow_delay=0.6) as apras:
        apras.log = lines.append
        h = {"Authorization": apras.token}
        key = requests.get(f"{apras.url}/api/partners/1000000002", headers=h, timeout=5).text
        requests.post(f"{apras.url}/api/partners/grant", json={"token": key}, headers=h, timeout=5)
        requests.post(f"{apras.url}/api/partners/grant", json={"token": "nope"}, headers=h, timeout=5)
        with pytest.raises(requests.Timeout):
            requests.get(f"{apras.url}/api/partners/5555555555", headers=h, timeout=0.2)
        for _ in range(40):
            if len(lines) >= 4:
                break
            time.sleep(0.05)
    assert lines[0] == "[APRAS simulator] card check •••• 0002: eligible (201)"
    assert lines[1] == "[APRAS simulator] grant received for card •••• 0002: recorded as APRAS id 1001 (201)"
    assert lines[2].startswith("[APRAS simulator] grant refused for card (no card) (400")
    assert lines[3].startswith("[APRAS simulator] card check •••• 5555: eligible (201)")
    assert all("1000000002" not in line and "5555555555" not in line for line in lines)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_demo_banner_names_the_slow_card(capsys):
    from types import SimpleNamespace

    import pretix_integrations_core.testing.apras as apras_module
    from demo import run, simulators

    spec = next(s for s in simulators.SIMULATORS if s.key == "apras")
    sim = SimpleNamespace(spec=spec, module=apras_module, token="t", url="http://127.0.0.1:8081")
    objs = SimpleNamespace(user=SimpleNamespace(email="admin@example.org"), organizer=SimpleNamespace(slug="demo"),
                           event=SimpleNamespace(slug="demo"))
    run.banner(objs, [sim], [], SimpleNamespace(url="smtp://127.0.0.1:1025"), 1.0)
    out = capsys.readouterr().out
    assert "slow card: 5555555555 (answers after 5 s" in out
