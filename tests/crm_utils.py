"""Shared fixtures and steps for the CRM bridge tests: an event connected to the fake Mautic and Invoice Ninja."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.models import Order, OrderPayment, OrderPosition
from pretix.base.models.datasync import OrderSyncQueue, OrderSyncResult
from pretix.base.services.datasync import sync_all

from pretix_crm_bridge import config
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.invoiceninja import DEMO_API_TOKEN
from pretix_integrations_core.testing.mautic import DEMO_PASSWORD, DEMO_USERNAME

from .sortir_utils import add_to_cart, base, confirm


def connect_mautic(organizer, server):
    organizer.settings.set(config.MAUTIC_URL, server.url)
    organizer.settings.set(config.MAUTIC_AUTH, config.AUTH_BASIC)
    organizer.settings.set(config.MAUTIC_USERNAME, DEMO_USERNAME)
    crypto.set_secret(organizer.settings, config.MAUTIC_PASSWORD, DEMO_PASSWORD)


def connect_ninja(organizer, server):
    organizer.settings.set(config.NINJA_URL, server.url)
    crypto.set_secret(organizer.settings, config.NINJA_TOKEN, DEMO_API_TOKEN)


@pytest.fixture
def crm_event(event, organizer, item, fake_mautic, fake_invoiceninja):
    event.enable_plugin("pretix_crm_bridge")
    event.settings.set("payment_manual__enabled", True)
    event.save()
    connect_mautic(organizer, fake_mautic)
    connect_ninja(organizer, fake_invoiceninja)
    event.settings.set(config.MAUTIC_ENABLED, True)
    event.settings.set(config.NINJA_ENABLED, True)
    return event


def storefront_order(client, event, item, *, consent=True, email="jane@example.org", count=1):
    """The whole storefront checkout with manual payment; returns the pending order."""
    add_to_cart(client, event, item, count=count)
    data = {"email": email, "email_repeat": email}
    if consent:
        data[config.CONSENT_FIELD] = "on"
    r = client.post(f"{base(event)}/checkout/questions/", data, follow=True)
    assert r.status_code == 200
    client.post(f"{base(event)}/checkout/payment/", {"payment": "manual"}, follow=True)
    confirm(client, event)
    with scopes_disabled():
        return Order.objects.filter(event=event).order_by("-pk").first()


def make_order(event, item, *, consent=True, email="jane@example.org", name=("Jane", "Doe"), status=Order.STATUS_PENDING, count=1):
    """An order created in code (fires no signal); callers use pretix services on it."""
    with scopes_disabled():
        order = Order.objects.create(
            event=event, email=email, status=status, locale="en", datetime=now(), expires=now() + timedelta(days=10),
            total=item.default_price * count, sales_channel=event.organizer.sales_channels.get(identifier="web"),
            meta_info='{"contact_form_data": {"%s": %s}}' % (config.CONSENT_FIELD, "true" if consent else "false"),
        )
        for _ in range(count):
            OrderPosition.objects.create(order=order, item=item, price=item.default_price,
                                         attendee_name_parts={"_scheme": "given_family", "given_name": name[0], "family_name": name[1]})
        return order


def pay(order, amount=None):
    """pretix's payment confirmation (what a payment provider or "mark as paid" does); fires order_paid."""
    with scope(organizer=order.event.organizer):
        p = order.payments.create(provider="manual", amount=amount if amount is not None else order.total, state=OrderPayment.PAYMENT_STATE_CREATED)
        p.confirm()
    order.refresh_from_db()
    return p


def run_queue(django_capture_on_commit_callbacks, make_due=True):
    """pretix's periodic data-sync run (sync_all), with the retry time moved to now if asked."""
    with scopes_disabled():
        if make_due:
            OrderSyncQueue.objects.filter(need_manual_retry__isnull=True).update(not_before=now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        sync_all.apply()


def queue_rows(order, provider):
    with scopes_disabled():
        return list(OrderSyncQueue.objects.filter(order=order, sync_provider=provider))


def results(order, provider):
    with scopes_disabled():
        return {r.mapping_id: r for r in OrderSyncResult.objects.filter(order=order, sync_provider=provider)}


__all__ = ["Decimal", "connect_mautic", "connect_ninja", "crm_event", "storefront_order", "make_order", "pay", "run_queue", "queue_rows",
           "results"]
