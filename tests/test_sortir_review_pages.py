"""
The buyer reviews each card before "Place binding order", and the order pages list each ticket with its card:
one line per Sortir! ticket, the masked card (last four digits only), never the hold's internal reference.
"""
import json
import re
from decimal import Decimal

import pytest
from django.test import Client
from django_scopes import scopes_disabled

from pretix.base.models import CartPosition, Item, Order, Quota

from pretix_sortir.models import CardUsage
from tests.sortir_utils import VALID, VALID2, add_to_cart, base, confirm, questions

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def flagged_item(sortir_event, admin_client):
    """A plain product, flagged "requires a Sortir! card" by the organiser on the plugin's products page."""
    with scopes_disabled():
        it = Item.objects.create(event=sortir_event, name="Sortir! rate", default_price=Decimal("0.00"), admission=True)
        q = Quota.objects.create(event=sortir_event, name="Sortir!", size=50)
        q.items.add(it)
    r = admin_client.post(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/products/",
                          {f"item_{it.pk}": "on"}, follow=True)
    assert r.status_code == 200
    with scopes_disabled():
        it.refresh_from_db()
    assert it.personalized and it.admission  # pretix lists personalized admission tickets one per line
    return it


def _lines(html, item):
    return html.count(f'data-article-id="item-{item.pk}"')


def _set_french(client, event):
    event.settings.set("locales", ["en", "fr"])
    client.get("/locale/set?locale=fr")


def _references():
    with scopes_disabled():
        return [str(r) for r in CardUsage.objects.values_list("reference", flat=True)]


def _assert_cards_listed(html, item, references):
    assert _lines(html, item) == 2, "each Sortir! ticket has its own line"
    assert "•••••• 0001" in html and "•••••• 0002" in html
    for ref in references:
        assert ref not in html
    assert not any(m in html for m in ("|" + r for r in references))


@pytest.mark.django_db
@pytest.mark.parametrize("lang,label,title", [
    ("en", "Sortir! card number", "Review order :: Concert"),
    ("fr", "Numéro de carte Sortir!", "Validation :: Concert"),
])
def test_review_page_lists_each_ticket_with_its_card(client, sortir_event, flagged_item, lang, label, title):
    if lang == "fr":
        _set_french(client, sortir_event)
    cps = add_to_cart(client, sortir_event, flagged_item, count=2)
    r = questions(client, sortir_event, {cps[0]: VALID, cps[1]: VALID2})
    assert r.status_code == 200
    html = client.get(f"{base(sortir_event)}/checkout/confirm/").content.decode()
    assert title in html
    assert html.count(label) >= 2
    _assert_cards_listed(html, flagged_item, _references())
    # The reference still travels to the order, out of sight
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        usages = {u.order_position.positionid: u.card_last4 for u in order.sortir_usages.select_related("order_position")}
        assert usages == {1: "0001", 2: "0002"}
        for op in order.positions.all():
            data = op.meta_info_data
            assert data["question_form_data"]["pretix_sortir_card"].startswith("•••••• ")
            assert "|" not in data["question_form_data"]["pretix_sortir_card"]
            assert data["pretix_sortir"]["reference"] == str(op.sortir_usages.get().reference)
            assert VALID not in op.meta_info and VALID2 not in op.meta_info


@pytest.mark.django_db
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_buyer_order_page_lists_each_ticket_with_its_card(client, sortir_event, flagged_item, lang):
    if lang == "fr":
        _set_french(client, sortir_event)
    cps = add_to_cart(client, sortir_event, flagged_item, count=2)
    questions(client, sortir_event, {cps[0]: VALID, cps[1]: VALID2})
    refs = _references()
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
    html = client.get(f"{base(sortir_event)}/order/{order.code}/{order.secret}/").content.decode()
    assert ("Numéro de carte Sortir!" if lang == "fr" else "Sortir! card number") in html
    _assert_cards_listed(html, flagged_item, refs)


@pytest.mark.django_db
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_control_order_page_lists_each_ticket_with_its_card(client, sortir_event, flagged_item, admin_user, lang):
    cps = add_to_cart(client, sortir_event, flagged_item, count=2)
    questions(client, sortir_event, {cps[0]: VALID, cps[1]: VALID2})
    refs = _references()
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        admin_user.locale = lang
        admin_user.save()
    organiser = Client()
    organiser.login(email="admin@example.org", password="admin-password")
    html = organiser.get(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/orders/{order.code}/").content.decode()
    assert ("Numéro de carte Sortir!" if lang == "fr" else "Sortir! card number") in html
    # pretix's own position list: one block per ticket with its answer, and the plugin's card panel
    assert html.count("•••••• 0001") == 1 and html.count("•••••• 0002") == 1
    assert "•••• 0001" in html.replace("•••••• 0001", "") and "•••• 0002" in html.replace("•••••• 0002", "")
    for ref in refs:
        assert ref not in html


@pytest.mark.django_db
def test_cart_saved_by_an_older_version_still_orders_and_shows_no_reference(client, sortir_event, flagged_item):
    """Positions answered before this version carry "•••••• 0001|<reference>": the order still binds the card."""
    cps = add_to_cart(client, sortir_event, flagged_item, count=1)
    questions(client, sortir_event, {cps[0]: VALID})
    with scopes_disabled():
        usage = CardUsage.objects.get()
        cp = CartPosition.objects.get(pk=cps[0].pk)
        data = cp.meta_info_data
        data["question_form_data"]["pretix_sortir_card"] = f"•••••• 0001|{usage.reference}"
        data.pop("pretix_sortir", None)
        CartPosition.objects.filter(pk=cp.pk).update(meta_info=json.dumps(data))
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        usage.refresh_from_db()
        assert usage.order == order and usage.state == CardUsage.GRANT_PENDING
        op = order.positions.get()
        assert op.meta_info_data["question_form_data"]["pretix_sortir_card"] == "•••••• 0001"
    html = client.get(f"{base(sortir_event)}/order/{order.code}/{order.secret}/").content.decode()
    assert "•••••• 0001" in html and str(usage.reference) not in html


@pytest.mark.django_db
def test_buyer_cannot_change_the_card_after_ordering(client, sortir_event, flagged_item):
    cps = add_to_cart(client, sortir_event, flagged_item, count=1)
    questions(client, sortir_event, {cps[0]: VALID})
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        op = order.positions.get()
    url = f"{base(sortir_event)}/order/{order.code}/{order.secret}/modify"
    html = client.get(url).content.decode()
    assert "•••••• 0001" in html and "disabled" in html
    client.post(url, {f"{op.pk}-pretix_sortir_card": VALID2, f"{op.pk}-attendee_name_parts_0": "Camille"}, follow=True)
    with scopes_disabled():
        op.refresh_from_db()
        assert op.meta_info_data["question_form_data"]["pretix_sortir_card"] == "•••••• 0001"
        assert list(CardUsage.objects.values_list("card_last4", flat=True)) == ["0001"]


@pytest.mark.django_db
def test_upgrade_moves_references_out_of_sight_and_personalizes_products(client, sortir_event, sortir_item):
    """The data migration: older answers lose their reference (kept in meta_info), Sortir! products are listed per ticket."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("pretix_sortir.migrations.0005_cards_listed_per_ticket")
    cps = add_to_cart(client, sortir_event, sortir_item, count=1)
    questions(client, sortir_event, {cps[0]: VALID})
    confirm(client, sortir_event)
    with scopes_disabled():
        order = Order.objects.get()
        op = order.positions.get()
        ref = str(op.sortir_usages.get().reference)
        old = {"question_form_data": {"pretix_sortir_card": f"•••••• 0001|{ref}"}}
        type(op).objects.filter(pk=op.pk).update(meta_info=json.dumps(old))
        assert not Item.objects.get(pk=sortir_item.pk).personalized
    with scopes_disabled():  # live models stand in for the migration's historical ones (which have no scopes)
        migration.forwards(apps, None)
    with scopes_disabled():
        op.refresh_from_db()
        assert op.meta_info_data == {"question_form_data": {"pretix_sortir_card": "•••••• 0001"}, "pretix_sortir": {"reference": ref}}
        it = Item.objects.get(pk=sortir_item.pk)
        assert it.personalized and it.admission


@pytest.mark.django_db
def test_card_attached_on_the_order_page_is_listed_with_its_ticket(admin_client, organizer, sortir_event, flagged_item):
    """A ticket created by the REST API gets its card on the control order page: both order pages then list it."""
    from pretix.base.models import Team

    team = Team.objects.create(organizer=organizer, name="API", all_events=True, all_event_permissions=True)
    api_client = Client()
    api_client.defaults["HTTP_AUTHORIZATION"] = f"Token {team.tokens.create(name='api').token}"
    body = {"email": "buyer@example.org", "locale": "en", "sales_channel": "web", "payment_provider": "manual",
            "positions": [{"positionid": i, "item": flagged_item.pk, "price": "0.00"} for i in (1, 2)]}
    r = api_client.post(f"/api/v1/organizers/{organizer.slug}/events/{sortir_event.slug}/orders/", body,
                        content_type="application/json")
    assert r.status_code == 201, r.content
    with scopes_disabled():
        order = Order.objects.get(code=r.json()["code"])
        missing = list(CardUsage.objects.filter(order=order).order_by("order_position__positionid"))
    for usage, card in zip(missing, (VALID, VALID2)):
        admin_client.post(f"/control/event/{organizer.slug}/{sortir_event.slug}/sortir/usages/{usage.pk}/attach/",
                          {"card_number": card}, follow=True)
    html = admin_client.get(f"/control/event/{organizer.slug}/{sortir_event.slug}/orders/{order.code}/").content.decode()
    assert html.count("•••••• 0001") == 1 and html.count("•••••• 0002") == 1
    buyer = Client().get(f"{base(sortir_event)}/order/{order.code}/{order.secret}/").content.decode()
    _assert_cards_listed(buyer, flagged_item, _references())
