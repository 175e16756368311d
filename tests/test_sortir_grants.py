from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils.timezone import now
from django_scopes import scopes_disabled
from freezegun import freeze_time

from pretix.base.models import LogEntry, OrderPayment
from pretix.base.services.orders import cancel_order, reactivate_order

from pretix_sortir.models import CardUsage
from pretix_sortir.signals import periodic
from tests.sortir_utils import VALID, checkout


def pay(order):
    with scopes_disabled():
        p = order.payments.create(provider="manual", amount=order.total, state=OrderPayment.PAYMENT_STATE_CREATED)
        p.confirm(send_mail=False)
        order.refresh_from_db()


def usage():
    with scopes_disabled():
        return CardUsage.objects.get()


def grants(fake):
    return fake.received("POST", "/api/partners/grant")


@pytest.mark.django_db
@override_settings(HAS_CELERY=True)
def test_grant_only_after_payment_and_after_commit(client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    assert order.status == "n"
    assert usage().state == CardUsage.VALIDATED
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        pay(order)
    assert usage().state == CardUsage.GRANT_PENDING and grants(fake_apras) == []  # nothing sent inside the payment transaction
    for cb in callbacks:
        cb()
    u = usage()
    assert u.state == CardUsage.USED and u.granted_at and grants(fake_apras)[0].json == {"token": fake_apras.service_key(VALID)}
    with scopes_disabled():
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.used", object_id=order.pk).exists()


@pytest.mark.django_db
def test_without_celery_worker_grant_is_left_to_the_periodic_task(
        client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with django_capture_on_commit_callbacks(execute=True):
        pay(order)  # eager mode: sending now would run inside the payment request
    assert usage().state == CardUsage.GRANT_PENDING and grants(fake_apras) == []
    periodic(sender=None)
    assert usage().state == CardUsage.USED and len(grants(fake_apras)) == 1


@pytest.mark.django_db
def test_testmode_orders_never_send_grants(client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    sortir_event.testmode = True
    sortir_event.save()
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    assert order.testmode
    pay(order)
    periodic(sender=None)
    assert usage().state == CardUsage.VALIDATED and grants(fake_apras) == []


@pytest.mark.django_db
def test_transient_failure_is_retried_by_periodic_task(client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    fake_apras.fail_next(path="/grant", status=503)
    pay(order)
    periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.GRANT_PENDING and u.grant_attempts == 1 and u.grant_next_attempt > now()
    assert len(grants(fake_apras)) == 1  # a POST is never repeated inside the same attempt
    periodic(sender=None)  # not due yet
    assert len(grants(fake_apras)) == 1
    with freeze_time(now() + timedelta(minutes=2)):
        periodic(sender=None)
    assert usage().state == CardUsage.USED and len(grants(fake_apras)) == 2


@pytest.mark.django_db
def test_unknown_outcome_is_flagged_not_repeated_then_resent_by_organiser(
        admin_client, client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    from pretix_sortir import apras
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    fake_apras.fail_next(path="/grant", drop=True)
    pay(order)
    periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.GRANT_UNKNOWN and len(grants(fake_apras)) == 1
    with freeze_time(now() + timedelta(hours=5)):
        periodic(sender=None)
    assert len(grants(fake_apras)) == 1  # never resent automatically
    page = admin_client.get(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/orders/{order.code}/")
    assert b"Send grant again" in page.content and "•••• 0001" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/usages/{u.pk}/resend/")
    assert r.status_code == 302
    assert usage().state == CardUsage.USED and len(grants(fake_apras)) == 2
    assert apras.SERVICE == "APRAS"


@pytest.mark.django_db
def test_2xx_with_unexpected_body_counts_as_delivered(client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    fake_apras.fail_next(path="/grant", status=200, body="<html>OK</html>")
    pay(order)
    periodic(sender=None)
    assert usage().state == CardUsage.USED


@pytest.mark.django_db
def test_rejected_grant_fails_permanently(client, paid_sortir_item, sortir_event, fake_apras, django_capture_on_commit_callbacks):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    fake_apras.fail_next(path="/grant", status=400, body={"message": "Paramètres invalides"})
    pay(order)
    periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.GRANT_FAILED and "400" in u.grant_last_error


@pytest.mark.django_db
def test_expired_order_releases_card(client, paid_sortir_item, sortir_event):
    from pretix.base.services.orders import expire_orders

    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        order.expires = now() - timedelta(days=1)
        order.save()
    expire_orders(None)
    with scopes_disabled():
        order.refresh_from_db()
    assert order.status == "e"
    assert usage().state == CardUsage.RELEASED


@pytest.mark.django_db
def test_cancelled_then_reactivated_order_takes_card_back(client, paid_sortir_item, sortir_event):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        cancel_order(order.pk)
        assert usage().state == CardUsage.RELEASED
        order.refresh_from_db()
        reactivate_order(order)
    assert usage().state == CardUsage.VALIDATED
    with scopes_disabled():
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.retaken", object_id=order.pk).exists()


@pytest.mark.django_db
def test_reactivation_when_card_taken_tells_organiser(client, paid_sortir_item, sortir_event):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        cancel_order(order.pk)
    assert usage().state == CardUsage.RELEASED
    other_order = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    assert other_order.pk != order.pk
    with scopes_disabled():
        order.refresh_from_db()
        reactivate_order(order)
        assert CardUsage.objects.get(order=order).state == CardUsage.RELEASED
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.retake_failed", object_id=order.pk).exists()


@pytest.mark.django_db
def test_release_on_cancel_off_keeps_card(client, paid_sortir_item, sortir_event, organizer):
    organizer.settings.set("pretix_sortir_release_on_cancel", False)
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        cancel_order(order.pk)
    assert usage().state == CardUsage.VALIDATED


@pytest.mark.django_db
def test_denied_order_releases_card(client, paid_sortir_item, sortir_event):
    from pretix.base.services.orders import deny_order

    paid_sortir_item.require_approval = True
    paid_sortir_item.save()
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    assert order.require_approval
    assert usage().state == CardUsage.VALIDATED
    with scopes_disabled():
        deny_order(order)
    assert usage().state == CardUsage.RELEASED
