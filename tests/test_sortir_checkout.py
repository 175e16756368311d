from datetime import timedelta

import pytest
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import CartPosition, LogEntry, Order

from pretix_integrations_core import crypto
from pretix_sortir.models import CardUsage
from pretix_sortir.signals import periodic
from tests.sortir_utils import VALID, VALID2, add_to_cart, base, confirm, questions


@pytest.mark.django_db
def test_checkout_with_valid_card_binds_card_to_order(client, sortir_event, sortir_item, fake_apras):
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = client.get(f"{base(sortir_event)}/checkout/questions/")
    assert b"Sortir! card number" in r.content
    r = questions(client, sortir_event, {cps[0]: "10000-00001"})
    assert r.status_code == 200
    assert b"checkout/confirm" in r.redirect_chain[-1][0].encode() or b"confirm" in r.content
    with scopes_disabled():
        usage = CardUsage.objects.get()
        assert usage.state == CardUsage.HELD and usage.card_last4 == "0001"
        assert VALID not in usage.card_digest and usage.service_key_secret.startswith("enc1:")
        cp = CartPosition.objects.get(pk=cps[0].pk)
        assert VALID not in cp.meta_info
    r = confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        usage.refresh_from_db()
        assert usage.order == order
        assert usage.state == CardUsage.GRANT_PENDING  # a free order is paid at once; the grant waits for the commit
        assert usage.order_position.positionid == 1
        assert VALID not in order.positions.first().meta_info
        entry = LogEntry.objects.get(action_type="pretix_sortir.usage.validated_many", object_id=order.pk)
        assert entry.display() == "Sortir! cards validated with the order (ticket #1: •••• 0001)."
    assert len(fake_apras.received("GET")) == 1  # one APRAS call per card


@pytest.mark.django_db
@pytest.mark.parametrize("card,message", [
    ("12345", b"A Sortir! card number has 10 digits."),
    ("9999999999", b"This Sortir! card is unknown or not eligible."),
])
def test_invalid_cards_are_refused_with_clear_message(client, sortir_event, sortir_item, card, message):
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: card})
    assert message in r.content
    with scopes_disabled():
        assert not CardUsage.objects.exists()


@pytest.mark.django_db
def test_same_card_twice_in_cart(client, sortir_event, sortir_item):
    cps = add_to_cart(client, sortir_event, sortir_item, count=2)
    r = questions(client, sortir_event, {cps[0]: VALID, cps[1]: VALID})
    assert b"already used for another ticket in your cart" in r.content


@pytest.mark.django_db
def test_card_used_by_another_buyer(client, django_user_model, sortir_event, sortir_item):
    from django.test import Client

    other = Client()
    cps_other = add_to_cart(other, sortir_event, sortir_item)
    questions(other, sortir_event, {cps_other[0]: VALID})
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: VALID})
    assert b"has already been used for this event" in r.content


@pytest.mark.django_db
def test_correction_releases_previous_card(client, sortir_event, sortir_item):
    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    questions(client, sortir_event, {cps[0]: VALID2})
    with scopes_disabled():
        states = dict(CardUsage.objects.values_list("card_last4", "state"))
    assert states == {"0001": CardUsage.RELEASED, "0002": CardUsage.HELD}


@pytest.mark.django_db
def test_expired_cart_frees_card(client, sortir_event, sortir_item):
    from django.test import Client

    other = Client()
    cps_other = add_to_cart(other, sortir_event, sortir_item)
    questions(other, sortir_event, {cps_other[0]: VALID})
    with scopes_disabled():
        CartPosition.objects.filter(pk=cps_other[0].pk).update(expires=now() - timedelta(minutes=1))
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: VALID})
    assert b"already been used" not in r.content
    with scopes_disabled():
        assert CardUsage.objects.get(state=CardUsage.HELD).cart_position_id == cps[0].pk


@pytest.mark.django_db
def test_card_number_never_logged_nor_kept_in_session(client, sortir_event, sortir_item, caplog):
    import logging

    from django.contrib.sessions.models import Session

    caplog.set_level(logging.DEBUG)
    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: "1000 0000 01"})
    confirm(client, sortir_event)
    assert any("/api/partners/" in r.getMessage() for r in caplog.records)  # the request was logged ...
    assert not any(VALID in r.getMessage() for r in caplog.records)  # ... without the number
    with scopes_disabled():
        assert not any(VALID in str(s.get_decoded()) for s in Session.objects.all())
        assert not any(VALID in (e.data or "") for e in LogEntry.objects.all())


@pytest.mark.django_db
def test_abandoned_cart_releases_card_in_periodic_task(client, sortir_event, sortir_item):
    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    periodic(sender=None)
    with scopes_disabled():
        assert CardUsage.objects.get().state == CardUsage.HELD  # cart still valid
        CartPosition.objects.filter(pk=cps[0].pk).update(expires=now() - timedelta(minutes=1))
    periodic(sender=None)
    with scopes_disabled():
        u = CardUsage.objects.get()
        assert u.state == CardUsage.RELEASED and u.service_key_secret == ""


@pytest.mark.django_db
def test_apras_down_says_temporarily_unavailable(client, sortir_event, sortir_item, fake_apras):
    fake_apras.fail_next(status=503, times=5)
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: VALID})
    assert b"temporarily unavailable" in r.content


@pytest.mark.django_db
def test_refused_token_notifies_organiser_and_buyer_sees_unavailable(client, sortir_event, sortir_item, organizer):
    crypto.set_secret(organizer.settings, "pretix_sortir_api_token_secret", "wrong-token")
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: VALID})
    assert b"temporarily unavailable" in r.content
    with scopes_disabled():
        assert LogEntry.objects.filter(action_type="pretix_sortir.apras.configuration_problem").count() == 1


@pytest.mark.django_db
def test_paid_order_sends_grant_after_commit(client, sortir_event, sortir_item, fake_apras, django_capture_on_commit_callbacks):
    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    confirm(client, sortir_event)  # free order: paid at once
    periodic(sender=None)
    with scopes_disabled():
        usage = CardUsage.objects.get()
        assert usage.state == CardUsage.USED, usage.grant_last_error
        assert usage.grant_id == str(fake_apras.grants[0]["id"])
    assert len(fake_apras.received("POST", "/api/partners/grant")) == 1


@pytest.mark.django_db
def test_cancel_releases_card(client, sortir_event, sortir_item):
    from pretix.base.services.orders import cancel_order

    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        cancel_order(order.pk)
        assert CardUsage.objects.get().state == CardUsage.RELEASED
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.released").exists()


@pytest.mark.django_db
def test_plugin_disabled_no_card_field(client, sortir_event, sortir_item):
    sortir_event.disable_plugin("pretix_sortir")
    sortir_event.save()
    add_to_cart(client, sortir_event, sortir_item)
    r = client.get(f"{base(sortir_event)}/checkout/questions/", follow=True)
    assert b"Sortir! card number" not in r.content


@pytest.mark.django_db
def test_refused_token_reaches_organiser_through_pretix_notifications(client, sortir_event, sortir_item, organizer, admin_user,
                                                                      django_capture_on_commit_callbacks, mailoutbox):
    from pretix.base.models.notifications import NotificationSetting

    NotificationSetting.objects.create(user=admin_user, action_type="pretix_sortir.apras.configuration_problem",
                                       method="mail", enabled=True, event=None)
    crypto.set_secret(organizer.settings, "pretix_sortir_api_token_secret", "wrong-token")
    cps = add_to_cart(client, sortir_event, sortir_item)
    with django_capture_on_commit_callbacks(execute=True):
        questions(client, sortir_event, {cps[0]: VALID})
    assert any("APRAS refused our credentials" in m.subject + m.body for m in mailoutbox)


@pytest.mark.django_db
def test_prefill_attendee_name_from_apras(client, sortir_event, sortir_item, fake_apras, organizer):
    organizer.settings.set("pretix_sortir_prefill_names", True)  # off by default: the standard APRAS API returns no name
    fake_apras.names[VALID] = ("Camille", "Martin")
    fake_apras.names[VALID2] = ("Léa", "Durand")
    cps = add_to_cart(client, sortir_event, sortir_item, count=2)
    questions(client, sortir_event, {cps[0]: VALID, cps[1]: VALID2})
    confirm(client, sortir_event)
    with scopes_disabled():
        names = dict(Order.objects.get().positions.values_list("positionid", "attendee_name_cached"))
        assert names == {1: "Camille Martin", 2: "Léa Durand"}
        assert all(u.holder_name_secret == "" for u in CardUsage.objects.all())  # not kept once used


@pytest.mark.django_db
def test_prefill_off_keeps_names_empty(client, sortir_event, sortir_item, fake_apras, organizer):
    organizer.settings.set("pretix_sortir_prefill_names", False)
    fake_apras.names[VALID] = ("Camille", "Martin")
    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    confirm(client, sortir_event)
    with scopes_disabled():
        assert not Order.objects.get().positions.get().attendee_name_cached


@pytest.mark.django_db
def test_messages_in_french(client, sortir_event, sortir_item):
    sortir_event.settings.set("locales", ["en", "fr"])
    client.get("/locale/set?locale=fr")
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: "12"})
    assert "Un numéro de carte Sortir! comporte 10 chiffres." in r.content.decode()
