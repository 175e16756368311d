"""
The card follows the order through pretix's other paths: late payment of an expired order, a new deadline,
reactivation, cancellation with "release on cancel" off, retention of a series, stale holds.
"""
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import CartPosition, LogEntry, OrderPayment, SubEvent
from pretix.base.models.notifications import NotificationSetting
from pretix.base.services.orders import OrderChangeManager, cancel_order, expire_orders, extend_order, reactivate_order

from pretix_integrations_core.events import event_end
from pretix_sortir.holds import release_stale_holds
from pretix_sortir.models import ArchivedUsageCount, CardUsage, SortirProduct
from pretix_sortir.signals import periodic, periodic_retention
from pretix_sortir.tasks import apply_retention_all
from tests.sortir_utils import VALID, VALID2, add_to_cart, checkout, confirm, questions


def pay(order):
    """A payment confirmed the way a payment provider (or an organiser) confirms it: late payments are accepted by default."""
    with scopes_disabled():
        p = order.payments.create(provider="manual", amount=order.total, state=OrderPayment.PAYMENT_STATE_CREATED)
        p.confirm(send_mail=False)
        order.refresh_from_db()


def expire(order):
    with scopes_disabled():
        order.expires = now() - timedelta(days=1)
        order.save()
    expire_orders(None)
    with scopes_disabled():
        order.refresh_from_db()
    assert order.status == "e"


def usages(order=None):
    with scopes_disabled():
        qs = CardUsage.objects.all() if order is None else CardUsage.objects.filter(order=order)
        return list(qs.order_by("pk"))


def state(order):
    (u,) = usages(order)
    return u.state


def grants(fake):
    return fake.received("POST", "/api/partners/grant")


def logged(order, action):
    with scopes_disabled():
        return [json.loads(d) for d in LogEntry.objects.filter(action_type="pretix_sortir.usage." + action, object_id=order.pk)
                .values_list("data", flat=True)]


def watch(user, action_type):
    NotificationSetting.objects.create(user=user, action_type=action_type, method="mail", enabled=True, event=None)


# -- 1. late payment and extension of an expired order ------------------------------------------------

@pytest.mark.django_db
def test_late_payment_of_expired_order_takes_card_back_and_sends_grant(
        client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    expire(order)
    assert state(order) == CardUsage.RELEASED
    pay(order)  # order_paid without order_reactivated
    assert order.status == "p"
    assert state(order) == CardUsage.GRANT_PENDING
    assert logged(order, "retaken_paid")
    periodic(sender=None)
    assert state(order) == CardUsage.USED and len(grants(fake_apras)) == 1


@pytest.mark.django_db
def test_late_payment_when_card_is_now_used_by_another_order(
        client, paid_sortir_item, sortir_event, fake_apras, admin_user, mailoutbox, django_capture_on_commit_callbacks):
    watch(admin_user, "pretix_sortir.usage.retake_failed")
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    expire(order)
    other = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    assert state(other) == CardUsage.VALIDATED
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)
    assert order.status == "p"
    assert state(order) == CardUsage.RELEASED and state(other) == CardUsage.VALIDATED  # never two active usages
    assert logged(order, "retake_failed")[0]["last4"] == "0001"
    assert any("could not be taken back" in m.subject for m in mailoutbox)
    periodic(sender=None)
    assert grants(fake_apras) == []


@pytest.mark.django_db
def test_extending_an_expired_order_takes_card_back(client, paid_sortir_item, sortir_event, fake_apras):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    expire(order)
    with scopes_disabled():
        extend_order(order, now() + timedelta(days=3))
        order.refresh_from_db()
    assert order.status == "n" and state(order) == CardUsage.VALIDATED
    assert logged(order, "retaken_extended")
    pay(order)
    periodic(sender=None)
    assert state(order) == CardUsage.USED and len(grants(fake_apras)) == 1


@pytest.mark.django_db
def test_extending_an_expired_order_whose_card_was_taken(client, paid_sortir_item, sortir_event):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    expire(order)
    other = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        extend_order(order, now() + timedelta(days=3), force=True)
    assert state(order) == CardUsage.RELEASED and state(other) == CardUsage.VALIDATED
    assert logged(order, "retake_failed")


# -- 8. reactivation ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_reactivated_paid_order_sends_its_pending_grant_once(client, paid_sortir_item, sortir_event, fake_apras):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    pay(order)  # no worker: the grant waits for the periodic task
    assert state(order) == CardUsage.GRANT_PENDING
    with scopes_disabled():
        cancel_order(order.pk)
        assert state(order) == CardUsage.RELEASED
        order.refresh_from_db()
        reactivate_order(order)  # the payment is still there: pretix sends order_reactivated, then order_paid
        order.refresh_from_db()
    assert order.status == "p" and state(order) == CardUsage.GRANT_PENDING
    periodic(sender=None)
    periodic(sender=None)
    assert state(order) == CardUsage.USED and len(grants(fake_apras)) == 1


@pytest.mark.django_db
def test_reactivated_order_with_unknown_grant_is_not_resent(client, paid_sortir_item, sortir_event, fake_apras):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    fake_apras.fail_next(path="/grant", drop=True)
    pay(order)
    periodic(sender=None)
    assert state(order) == CardUsage.GRANT_UNKNOWN
    with scopes_disabled():
        cancel_order(order.pk)
        order.refresh_from_db()
        reactivate_order(order)
    assert state(order) == CardUsage.GRANT_UNKNOWN  # for the organiser to check, never a second POST by itself
    periodic(sender=None)
    assert len(grants(fake_apras)) == 1
    assert logged(order, "apras_check_by_hand")


@pytest.mark.django_db
def test_reactivation_skips_a_product_that_no_longer_needs_a_card(client, paid_sortir_item, sortir_event):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        cancel_order(order.pk)
        SortirProduct.objects.filter(item=paid_sortir_item).delete()  # the organiser unticked the product meanwhile
        order.refresh_from_db()
        reactivate_order(order)
    assert state(order) == CardUsage.RELEASED and not logged(order, "retaken")


# -- 4. "release on cancel" off, and grants already sent -----------------------------------------------

@pytest.fixture
def keep_cards(organizer):
    organizer.settings.set("pretix_sortir_release_on_cancel", False)


@pytest.mark.django_db
def test_release_off_cancelled_order_withdraws_pending_grant(client, paid_sortir_item, sortir_event, fake_apras, keep_cards):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    pay(order)
    assert state(order) == CardUsage.GRANT_PENDING
    with scopes_disabled():
        cancel_order(order.pk)
    assert state(order) == CardUsage.VALIDATED  # the card stays taken, as the organiser wants
    assert logged(order, "grant_withdrawn")
    periodic(sender=None)
    assert grants(fake_apras) == []


@pytest.mark.django_db
def test_release_off_failed_grant_of_cancelled_order_is_not_left_to_resend(
        client, paid_sortir_item, sortir_event, fake_apras, keep_cards):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    fake_apras.fail_next(path="/grant", status=400, body={"message": "Paramètres invalides"})
    pay(order)
    periodic(sender=None)
    assert state(order) == CardUsage.GRANT_FAILED
    with scopes_disabled():
        cancel_order(order.pk)
    assert state(order) == CardUsage.VALIDATED


@pytest.mark.django_db
def test_release_off_cancelled_position_and_changed_product_get_no_grant(
        client, paid_sortir_item, sortir_event, item, fake_apras, keep_cards):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID, VALID2], pay_manually=True)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.cancel(order.positions.get(positionid=2))
        ocm.commit()
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.get(positionid=1), item, None)
        ocm.commit()
        order.refresh_from_db()
    pay(order)
    periodic(sender=None)
    assert grants(fake_apras) == []
    # The cancelled ticket keeps its card taken; the ticket changed to a plain product is no longer a Sortir! ticket,
    # so its card is freed whatever the release rule.
    assert {u.order_position.positionid: u.state for u in usages(order)} == {2: CardUsage.VALIDATED, 1: CardUsage.RELEASED}


@pytest.mark.django_db
def test_release_off_position_cancelled_while_grant_pending(client, paid_sortir_item, sortir_event, fake_apras, keep_cards):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID, VALID2], pay_manually=True)
    pay(order)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.cancel(order.positions.get(positionid=2))
        ocm.commit()
        states = dict(CardUsage.objects.values_list("card_last4", "state"))
    assert states == {"0001": CardUsage.GRANT_PENDING, "0002": CardUsage.VALIDATED}
    periodic(sender=None)
    assert [g.json for g in grants(fake_apras)] == [{"token": fake_apras.service_key(VALID)}]


@pytest.mark.django_db
@pytest.mark.parametrize("release_on_cancel", [True, False])
def test_cancelling_a_used_card_tells_organiser_to_inform_apras(
        client, paid_sortir_item, sortir_event, organizer, fake_apras, admin_user, mailoutbox,
        django_capture_on_commit_callbacks, release_on_cancel):
    organizer.settings.set("pretix_sortir_release_on_cancel", release_on_cancel)
    watch(admin_user, "pretix_sortir.usage.apras_cancel_by_hand")
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    pay(order)
    periodic(sender=None)
    assert state(order) == CardUsage.USED
    with django_capture_on_commit_callbacks(execute=True), scopes_disabled():
        cancel_order(order.pk)
    assert state(order) == (CardUsage.RELEASED if release_on_cancel else CardUsage.USED)
    (entry,) = logged(order, "apras_cancel_by_hand")
    assert entry["last4"] == "0001" and entry["grant_id"]
    mails = [m for m in mailoutbox if "tell APRAS by hand" in m.subject]
    assert len(mails) == 1 and "APRAS offers no cancellation" in mails[0].body
    with scopes_disabled():
        page = LogEntry.objects.get(action_type="pretix_sortir.usage.apras_cancel_by_hand").display()
    assert "tell APRAS by hand" in page and "•••• 0001" in page
    assert len(grants(fake_apras)) == 1


@pytest.mark.django_db
def test_used_card_of_cancelled_position_reported_once(client, paid_sortir_item, sortir_event, fake_apras, keep_cards):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID, VALID2], pay_manually=True)
    pay(order)
    periodic(sender=None)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.cancel(order.positions.get(positionid=2))
        ocm.commit()
        ocm = OrderChangeManager(order)
        ocm.change_price(order.positions.get(positionid=1), Decimal("4.00"))  # a later, unrelated change
        ocm.commit()
    assert [e["last4"] for e in logged(order, "apras_cancel_by_hand")] == ["0002"]


# -- 2. retention of a series, disabled plugin, unresolved grants ---------------------------------------

@pytest.fixture
def long_series(sortir_event, paid_sortir_item):
    """A series whose first date is long past and whose last date is still to come."""
    sortir_event.has_subevents = True
    sortir_event.date_from = now() - timedelta(days=200)
    sortir_event.save()
    first = SubEvent.objects.create(event=sortir_event, name="First", date_from=now() - timedelta(days=200), active=True)
    last = SubEvent.objects.create(event=sortir_event, name="Last", date_from=now() + timedelta(days=20), active=True)
    for d in (first, last):
        sortir_event.quotas.create(name=f"q{d.pk}", size=10, subevent=d).items.add(paid_sortir_item)
    return first, last


@pytest.mark.django_db
def test_event_end_is_the_last_date_of_a_series(sortir_event, long_series):
    first, last = long_series
    with scopes_disabled():
        assert event_end(sortir_event) == last.date_from
        hidden = SubEvent.objects.create(event=sortir_event, name="Hidden", date_from=now() + timedelta(days=40),
                                         date_to=now() + timedelta(days=41), active=False)
        assert event_end(sortir_event) == hidden.date_to
    single = type(sortir_event)(date_from=now(), date_to=now() + timedelta(hours=3))
    assert event_end(single) == single.date_to


@pytest.mark.django_db
def test_periodic_retention_keeps_a_running_series(sortir_event, long_series, paid_sortir_item):
    first, last = long_series
    with scopes_disabled():
        usage = CardUsage.objects.create(event=sortir_event, subevent=last, date_key=last.pk, card_digest="d" * 64,
                                         card_last4="0001", state=CardUsage.VALIDATED)
    periodic_retention(sender=None)
    with scopes_disabled():
        assert CardUsage.objects.filter(pk=usage.pk, state=CardUsage.VALIDATED).exists()
        last.date_from = now() - timedelta(days=100)
        last.save()
    apply_retention_all()  # what the periodic receiver runs (at most twice a day)
    with scopes_disabled():
        assert not CardUsage.objects.filter(event=sortir_event).exists()


@pytest.mark.django_db
def test_retention_purges_events_where_the_plugin_was_disabled(sortir_event, paid_sortir_item):
    checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    sortir_event.disable_plugin("pretix_sortir")
    sortir_event.date_from = now() - timedelta(days=100)
    sortir_event.save()
    apply_retention_all()
    with scopes_disabled():
        assert not CardUsage.objects.filter(event=sortir_event).exists()
        assert ArchivedUsageCount.objects.get(event=sortir_event).count == 1


@pytest.mark.django_db
def test_retention_reports_failed_and_unknown_grants_it_archives(
        sortir_event, paid_sortir_item, fake_apras, admin_user, mailoutbox, django_capture_on_commit_callbacks):
    watch(admin_user, "pretix_sortir.retention.unresolved_archived")
    o1 = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    o2 = checkout(Client(), sortir_event, paid_sortir_item, [VALID2], pay_manually=True)
    fake_apras.fail_next(path="/grant", status=400, body={"message": "Paramètres invalides"})
    pay(o1)
    periodic(sender=None)
    fake_apras.fail_next(path="/grant", drop=True)
    pay(o2)
    periodic(sender=None)
    assert {state(o1), state(o2)} == {CardUsage.GRANT_FAILED, CardUsage.GRANT_UNKNOWN}
    sortir_event.date_from = now() - timedelta(days=100)
    sortir_event.save()
    with django_capture_on_commit_callbacks(execute=True):
        apply_retention_all()
    with scopes_disabled():
        assert not CardUsage.objects.filter(event=sortir_event).exists()
        entry = LogEntry.objects.get(action_type="pretix_sortir.retention.unresolved_archived")
        assert entry.parsed_data == {"failed": 1, "unknown": 1, "orders": sorted([o1.code, o2.code])}
        assert "1 failed, 1 with an unknown outcome" in entry.display()
    assert any("unresolved grants" in m.subject for m in mailoutbox)


# -- 8. stale holds ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_releasing_stale_holds_never_flips_a_card_validated_meanwhile(client, sortir_event, sortir_item):
    cps = add_to_cart(client, sortir_event, sortir_item)
    questions(client, sortir_event, {cps[0]: VALID})
    with scopes_disabled():
        CartPosition.objects.filter(pk=cps[0].pk).update(expires=now() - timedelta(minutes=1))  # the cart expired: its hold looks stale
        (hold,) = usages()
    assert hold.state == CardUsage.HELD
    placed = []

    def order_placed_meanwhile(execute, sql, params, many, context):
        # The buyer's order is placed between the stale check and the release (another process would do this).
        if not placed and sql.startswith("UPDATE") and "pretix_sortir_cardusage" in sql:
            placed.append(True)
            confirm(client, sortir_event)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(order_placed_meanwhile), scopes_disabled():
        release_stale_holds()
    assert placed
    (u,) = usages()
    assert u.order_id and u.state == CardUsage.GRANT_PENDING  # a free order: paid at once, its grant queued


@pytest.mark.django_db
def test_order_cancelled_while_its_grant_is_being_sent(client, paid_sortir_item, sortir_event, fake_apras):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    pay(order)
    cancelled = []

    def cancel_during_post(execute, sql, params, many, context):
        # APRAS has answered; before its answer is recorded, an organiser cancels the order (in another request).
        if not cancelled and sql.startswith("UPDATE") and "pretix_sortir_cardusage" in sql and "grant_id" in sql:
            cancelled.append(True)
            cancel_order(order.pk)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(cancel_during_post):
        periodic(sender=None)
    assert cancelled and len(grants(fake_apras)) == 1
    (u,) = usages(order)
    assert u.state == CardUsage.RELEASED and u.grant_id  # APRAS's receipt is kept with the released card
    (entry,) = logged(order, "apras_cancel_by_hand")
    assert entry["grant_id"] == u.grant_id
