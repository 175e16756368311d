"""Shared fixtures and steps for the Sortir! tests: a real event, the fake APRAS and pretix's own checkout."""
from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import CartPosition, Item, Order, Quota

from pretix_integrations_core import crypto
from pretix_sortir.models import SortirProduct

VALID = "1000000001"
VALID2 = "1000000002"


@pytest.fixture
def sortir_event(event, organizer, fake_apras):
    event.enable_plugin("pretix_sortir")
    event.settings.set("payment_manual__enabled", True)
    event.save()
    organizer.settings.set("pretix_sortir_api_url", fake_apras.url)
    crypto.set_secret(organizer.settings, "pretix_sortir_api_token_secret", fake_apras.token)
    return event


def make_sortir_item(event, price="0.00", name="Sortir! ticket"):
    it = Item.objects.create(event=event, name=name, default_price=Decimal(price), admission=True)
    q = Quota.objects.create(event=event, name=f"Quota {name}", size=50)
    q.items.add(it)
    SortirProduct.objects.create(event=event, item=it)
    return it


@pytest.fixture
def sortir_item(sortir_event):
    return make_sortir_item(sortir_event)


@pytest.fixture
def paid_sortir_item(sortir_event):
    return make_sortir_item(sortir_event, price="4.50", name="Sortir! paid ticket")


def base(event):
    return f"/{event.organizer.slug}/{event.slug}"


def csrf_token(client, event):
    """The CSRF token a browser would have after loading the shop (pretix's cookie name)."""
    client.get(f"{base(event)}/")
    for name in ("pretix_csrftoken", "__Host-pretix_csrftoken"):
        if name in client.cookies:
            return client.cookies[name].value
    return ""


def add_to_cart(client, event, item, count=1):
    with scopes_disabled():
        before = set(CartPosition.objects.values_list("pk", flat=True))
    r = client.post(f"{base(event)}/cart/add", {f"item_{item.pk}": str(count), "csrfmiddlewaretoken": csrf_token(client, event)},
                    follow=True)
    assert r.status_code == 200
    with scopes_disabled():
        return list(CartPosition.objects.filter(event=event, item=item).exclude(pk__in=before).order_by("pk"))


def questions(client, event, cards, email="buyer@example.org"):
    data = {"email": email, "email_repeat": email}
    for cp, card in cards.items():
        data[f"{cp.pk}-pretix_sortir_card"] = card
    return client.post(f"{base(event)}/checkout/questions/", data, follow=True)


def confirm(client, event):
    return client.post(f"{base(event)}/checkout/confirm/", {}, follow=True)


def checkout(client, event, item, cards, pay_manually=False):
    """The whole storefront checkout; returns the order."""
    cps = add_to_cart(client, event, item, count=len(cards))
    r = questions(client, event, dict(zip(cps, cards)))
    assert r.status_code == 200
    if pay_manually:
        client.post(f"{base(event)}/checkout/payment/", {"payment": "manual"}, follow=True)
    confirm(client, event)
    with scopes_disabled():
        return Order.objects.filter(event=event).order_by("-pk").first()
