"""
Degraded mode (organiser setting, off by default): when APRAS cannot answer, the buyer may still order; the
order waits in pretix's order approval until the card, kept encrypted, is checked in the background.
"""
import re

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import LogEntry, Order
from pretix.base.models.notifications import NotificationSetting
from pretix.base.services.orders import deny_order

from pretix_sortir.models import CardUsage
from pretix_sortir.signals import periodic, periodic_deferred_checks
from tests.sortir_utils import VALID, VALID2, add_to_cart, base, confirm, questions

UNKNOWN = "9999999999"


@pytest.fixture
def degraded(organizer):
    organizer.settings.set("pretix_sortir_accept_unchecked", True)
    return organizer


def apras_down(fake_apras, times=100):
    fake_apras.fail_next(path="/api/partners/", method="GET", status=503, times=times)


def order_with_apras_down(client, event, item, fake_apras, cards, pay_manually=False):
    apras_down(fake_apras)
    cps = add_to_cart(client, event, item, count=len(cards))
    r = questions(client, event, dict(zip(cps, cards)))
    assert "temporarily unavailable" not in r.content.decode()
    page = client.get(f"{base(event)}/checkout/confirm/").content.decode()
    for card in cards:
        assert f"APRAS cannot check the Sortir! card ending in {card[-4:]} right now" in page
    if pay_manually:
        client.post(f"{base(event)}/checkout/payment/", {"payment": "manual"}, follow=True)
    confirm(client, event)
    fake_apras.clear_faults()
    with scopes_disabled():
        return Order.objects.get()


def background_checks(capture):
    with capture(execute=True):
        periodic_deferred_checks(sender=None)


@pytest.mark.django_db
def test_off_by_default_buyer_sees_try_again_later(client, sortir_event, sortir_item, fake_apras):
    apras_down(fake_apras)
    cps = add_to_cart(client, sortir_event, sortir_item)
    r = questions(client, sortir_event, {cps[0]: VALID})
    assert "temporarily unavailable. Please try again in a few minutes." in r.content.decode()
    with scopes_disabled():
        assert not CardUsage.objects.exists()


@pytest.mark.django_db
def test_apras_down_order_waits_for_approval_then_card_accepted_approves_and_grants(
        client, sortir_event, sortir_item, fake_apras, degraded, django_capture_on_commit_callbacks, caplog):
    order = order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [VALID, VALID2])
    with scopes_disabled():
        assert order.status == Order.STATUS_PENDING and order.require_approval  # pretix's own order approval
        assert not order.payments.exists()  # a free order is not "paid" while it waits
        usages = list(CardUsage.objects.order_by("card_last4"))
        assert [u.state for u in usages] == [CardUsage.UNCHECKED] * 2
        assert all(u.order == order and u.order_position for u in usages)
        for u in usages:  # the number is kept for the later check, encrypted with the core's secrets helper
            assert u.card_number_secret.startswith("enc1:") and VALID not in u.card_number_secret
        assert LogEntry.objects.filter(action_type="pretix.event.order.placed.require_approval", object_id=order.pk).exists()
        held = LogEntry.objects.get(action_type="pretix_sortir.usage.held_for_check_many", object_id=order.pk)
        assert "•••• 0001" in held.display() and "•••• 0002" in held.display()
    html = client.get(f"{base(sortir_event)}/order/{order.code}/{order.secret}/?thanks=1").content.decode()
    assert "we still await approval by the event organizer" in html  # pretix's own words for an order in approval
    assert "Your Sortir! cards (•••• 0001, •••• 0002) could not be checked with APRAS when you ordered." in html

    background_checks(django_capture_on_commit_callbacks)
    with scopes_disabled():
        order.refresh_from_db()
        assert not order.require_approval and order.status == Order.STATUS_PAID  # approved, a free order is then paid
        usages = list(CardUsage.objects.order_by("card_last4"))
        assert [u.state for u in usages] == [CardUsage.GRANT_PENDING] * 2
        assert all(u.card_number_secret == "" and u.service_key_secret.startswith("enc1:") for u in usages)
        assert LogEntry.objects.filter(action_type="pretix.event.order.approved", object_id=order.pk).exists()
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.deferred_accepted", object_id=order.pk).count() == 2
    periodic(sender=None)
    with scopes_disabled():
        assert set(CardUsage.objects.values_list("state", flat=True)) == {CardUsage.USED}
    assert len(fake_apras.grants) == 2
    assert not any(VALID in r.getMessage() or VALID2 in r.getMessage() for r in caplog.records)
    with scopes_disabled():
        assert not any(VALID in (e.data or "") for e in LogEntry.objects.all())


@pytest.mark.django_db
def test_refused_card_leaves_order_in_approval_releases_card_and_notifies(
        client, sortir_event, sortir_item, fake_apras, degraded, admin_user, mailoutbox, django_capture_on_commit_callbacks):
    NotificationSetting.objects.create(user=admin_user, action_type="pretix_sortir.usage.deferred_refused",
                                       method="mail", enabled=True, event=None)
    order = order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [UNKNOWN])
    mailoutbox.clear()
    background_checks(django_capture_on_commit_callbacks)
    with scopes_disabled():
        order.refresh_from_db()
        assert order.status == Order.STATUS_PENDING and order.require_approval
        usage = CardUsage.objects.get()
        assert usage.state == CardUsage.RELEASED and usage.card_number_secret == ""
        entry = LogEntry.objects.get(action_type="pretix_sortir.usage.deferred_refused", object_id=order.pk)
        assert "APRAS refused it (APRAS does not know this card or it has no Sortir! rights)" in entry.display()
    mails = [m for m in mailoutbox if "Sortir! card refused" in m.subject + m.body]
    assert mails and order.code in mails[0].subject + mails[0].body
    assert UNKNOWN not in mails[0].body
    # the organiser decides with pretix's own deny
    with scopes_disabled():
        deny_order(order)
        order.refresh_from_db()
        assert order.status == Order.STATUS_CANCELED


@pytest.mark.django_db
def test_slow_apras_paid_order_waits_for_approval_then_is_payable(
        client, sortir_event, paid_sortir_item, fake_apras, degraded, organizer, django_capture_on_commit_callbacks):
    organizer.settings.set("pretix_sortir_timeout", 1)
    fake_apras.fail_next(path="/api/partners/", method="GET", delay=3, times=2)  # slower than the buyer may wait
    cps = add_to_cart(client, sortir_event, paid_sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    client.post(f"{base(sortir_event)}/checkout/payment/", {"payment": "manual"}, follow=True)
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        assert order.require_approval and not order.payments.exists()
        assert CardUsage.objects.get().state == CardUsage.UNCHECKED
    fake_apras.clear_faults()
    background_checks(django_capture_on_commit_callbacks)
    with scopes_disabled():
        order.refresh_from_db()
        assert not order.require_approval and order.status == Order.STATUS_PENDING  # approved: the buyer can pay now
        assert CardUsage.objects.get().state == CardUsage.VALIDATED
        order.payments.create(provider="manual", amount=order.total).confirm()
        assert CardUsage.objects.get().state == CardUsage.GRANT_PENDING


@pytest.mark.django_db
def test_apras_still_down_in_background_keeps_waiting(client, sortir_event, sortir_item, fake_apras, degraded,
                                                      django_capture_on_commit_callbacks):
    order = order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [VALID])
    apras_down(fake_apras)
    background_checks(django_capture_on_commit_callbacks)
    with scopes_disabled():
        order.refresh_from_db()
        assert order.require_approval
        u = CardUsage.objects.get()
        assert u.state == CardUsage.UNCHECKED and u.card_number_secret.startswith("enc1:")


@pytest.mark.django_db
def test_denied_order_releases_unchecked_card_and_erases_number(client, sortir_event, sortir_item, fake_apras, degraded):
    order = order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [VALID])
    with scopes_disabled():
        deny_order(order)
        u = CardUsage.objects.get()
        assert u.state == CardUsage.RELEASED and u.card_number_secret == ""


@pytest.mark.django_db
def test_unchecked_card_is_still_once_per_event(client, sortir_event, sortir_item, fake_apras, degraded):
    from django.test import Client

    order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [VALID])
    other = Client()
    cps = add_to_cart(other, sortir_event, sortir_item)
    r = questions(other, sortir_event, {cps[0]: VALID})
    assert "has already been used for this event" in r.content.decode()


@pytest.mark.django_db
def test_organiser_setting_with_help_text(admin_client, organizer, fake_apras):
    url = f"/control/organizer/{organizer.slug}/sortir/"
    page = admin_client.get(url).content.decode()
    tag = re.search(r'<input[^>]*name="pretix_sortir_accept_unchecked"[^>]*>', page).group(0)
    assert not tag.endswith("checked>")  # off by default
    assert "Accept orders while APRAS cannot answer" in page and "waits for approval" in page
    admin_client.post(url, {"pretix_sortir_timeout": "2", "pretix_sortir_usage_retention_days": "90",
                            "pretix_sortir_audit_retention_days": "365", "pretix_sortir_accept_unchecked": "on"}, follow=True)
    organizer.settings.flush()
    assert organizer.settings.get("pretix_sortir_accept_unchecked", as_type=bool) is True


@pytest.mark.django_db
def test_order_approved_by_hand_before_the_check_gets_its_grant_once_accepted(
        client, sortir_event, sortir_item, fake_apras, degraded, django_capture_on_commit_callbacks):
    from pretix.base.services.orders import approve_order

    order = order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [VALID])
    with scopes_disabled():
        approve_order(order)  # the organiser did not wait for APRAS
        order.refresh_from_db()
        assert order.status == Order.STATUS_PAID
        assert CardUsage.objects.get().state == CardUsage.UNCHECKED  # no grant for an unchecked card
    background_checks(django_capture_on_commit_callbacks)
    with scopes_disabled():
        assert CardUsage.objects.get().state == CardUsage.GRANT_PENDING
    periodic(sender=None)
    with scopes_disabled():
        assert CardUsage.objects.get().state == CardUsage.USED
    assert len(fake_apras.grants) == 1


@pytest.mark.django_db
def test_refused_card_does_not_come_back_when_the_order_is_reactivated(
        client, sortir_event, sortir_item, fake_apras, degraded, django_capture_on_commit_callbacks):
    from pretix.base.services.orders import approve_order, cancel_order, reactivate_order

    order = order_with_apras_down(client, sortir_event, sortir_item, fake_apras, [UNKNOWN])
    background_checks(django_capture_on_commit_callbacks)  # APRAS refuses the card
    with scopes_disabled():
        approve_order(order)  # the organiser lets the buyer in anyway, then cancels and reactivates
        order.refresh_from_db()
        cancel_order(order.pk)
        order.refresh_from_db()
        reactivate_order(order)
        states = sorted(CardUsage.objects.values_list("state", flat=True))
    assert states == [CardUsage.MISSING, CardUsage.RELEASED]  # the ticket is flagged "no card yet", never a refused card
