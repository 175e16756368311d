from datetime import timedelta

import pytest
from django.test import Client
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import SubEvent
from pretix.base.services.orders import OrderChangeManager

from pretix_sortir.models import CardUsage
from tests.sortir_utils import VALID, base, checkout, csrf_token


@pytest.fixture
def series(sortir_event, sortir_item):
    sortir_event.has_subevents = True
    sortir_event.save()
    d1 = SubEvent.objects.create(event=sortir_event, name="Day 1", date_from=now() + timedelta(days=10), active=True)
    d2 = SubEvent.objects.create(event=sortir_event, name="Day 2", date_from=now() + timedelta(days=11), active=True)
    for d in (d1, d2):
        q = sortir_event.quotas.create(name=f"q{d.pk}", size=10, subevent=d)
        q.items.add(sortir_item)
    return d1, d2


def add_for_date(client, event, item, subevent):
    from pretix.base.models import CartPosition
    with scopes_disabled():
        before = set(CartPosition.objects.values_list("pk", flat=True))
    client.post(f"{base(event)}/cart/add", {f"item_{item.pk}": "1", "subevent": str(subevent.pk),
                                            "csrfmiddlewaretoken": csrf_token(client, event)})
    with scopes_disabled():
        return list(CartPosition.objects.exclude(pk__in=before))


@pytest.mark.django_db
def test_one_card_per_date_of_a_series(sortir_event, sortir_item, series):
    from tests.sortir_utils import questions
    d1, d2 = series
    c1, c2, c3 = Client(), Client(), Client()
    r = questions(c1, sortir_event, {add_for_date(c1, sortir_event, sortir_item, d1)[0]: VALID})
    assert b"already been used" not in r.content
    r = questions(c2, sortir_event, {add_for_date(c2, sortir_event, sortir_item, d2)[0]: VALID})
    assert b"already been used" not in r.content  # another date: allowed
    r = questions(c3, sortir_event, {add_for_date(c3, sortir_event, sortir_item, d1)[0]: VALID})
    assert b"has already been used for this event" in r.content
    with scopes_disabled():
        assert sorted(CardUsage.objects.filter(state=CardUsage.HELD).values_list("date_key", flat=True)) == sorted([d1.pk, d2.pk])


@pytest.mark.django_db
def test_position_changed_to_plain_product_releases_card(client, sortir_event, paid_sortir_item, item):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.first(), item, None)
        ocm.commit()
        assert CardUsage.objects.get().state == CardUsage.RELEASED


@pytest.mark.django_db
def test_cancelled_position_releases_card(client, sortir_event, paid_sortir_item):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID, "1000000002"], pay_manually=True)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.cancel(order.positions.get(positionid=2))
        ocm.commit()
        states = dict(CardUsage.objects.values_list("card_last4", "state"))
    assert states == {"0001": CardUsage.VALIDATED, "0002": CardUsage.RELEASED}


@pytest.mark.django_db
def test_check_endpoint_can_run_inside_the_widget_iframe(client, sortir_event, sortir_item):
    from tests.sortir_utils import add_to_cart
    cp = add_to_cart(client, sortir_event, sortir_item)[0]
    r = client.post(f"{base(sortir_event)}/sortir/check/", {"position": cp.pk, "card": VALID})
    assert r.status_code == 200 and "X-Frame-Options" not in r.headers
