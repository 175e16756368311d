from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import Item, ItemVariation, Team, User

from pretix_sortir.models import CardUsage, SortirProduct


@pytest.fixture
def sortir_event(event):
    event.enable_plugin("pretix_sortir")
    event.save()
    return event


@pytest.fixture
def products(sortir_event):
    full = Item.objects.create(event=sortir_event, name="Plein tarif", default_price=Decimal("16"))
    reduced = Item.objects.create(event=sortir_event, name="Tarif Sortir!", default_price=Decimal("4.50"))
    shirt = Item.objects.create(event=sortir_event, name="Atelier", default_price=Decimal("10"))
    v1 = ItemVariation.objects.create(item=shirt, value="Sortir!")
    v2 = ItemVariation.objects.create(item=shirt, value="Normal")
    return full, reduced, shirt, v1, v2


def user_with(organizer, event, email, **perms):
    u = User.objects.create_user(email, "pw")
    t = Team.objects.create(organizer=organizer, name=email, limit_event_permissions=perms or {"event.vouchers:read": True})
    t.limit_events.add(event)
    t.members.add(u)
    return u


def url(event, name):
    return f"/control/event/{event.organizer.slug}/{event.slug}/sortir/{name}/"


@pytest.mark.django_db
def test_products_list_saves_item_and_variation_flags(admin_client, sortir_event, products):
    full, reduced, shirt, v1, v2 = products
    r = admin_client.get(url(sortir_event, "products"))
    assert r.status_code == 200 and b"Tarif Sortir!" in r.content
    r = admin_client.post(url(sortir_event, "products"), {f"item_{reduced.pk}": "on", f"variation_{v1.pk}": "on"}, follow=True)
    assert b"Your changes have been saved." in r.content
    with scopes_disabled():
        assert set(SortirProduct.objects.values_list("item_id", "variation_id")) == {(reduced.pk, None), (shirt.pk, v1.pk)}
        assert sortir_event.all_logentries().filter(action_type="pretix_sortir.products.changed").exists()


@pytest.mark.django_db
def test_product_page_form_and_copy(admin_client, sortir_event, products):
    full, reduced, shirt, v1, v2 = products
    r = admin_client.get(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/items/{reduced.pk}/")
    assert b"Requires a Sortir! card" in r.content
    with scopes_disabled():
        SortirProduct.objects.create(event=sortir_event, item=reduced)
        from pretix.base.models import Event
        copy = Event.objects.create(organizer=sortir_event.organizer, name="Copy", slug="copy", date_from=sortir_event.date_from)
        copy.copy_data_from(sortir_event)
        assert SortirProduct.objects.filter(event=copy, item__name__icontains="Sortir", variation__isnull=True).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("view,perm", [("products", "event.items:write"), ("usages", "event.orders:read")])
def test_views_need_their_permission(client, organizer, sortir_event, view, perm):
    user_with(organizer, sortir_event, "nobody@example.org")
    assert client.login(email="nobody@example.org", password="pw")
    assert client.get(url(sortir_event, view)).status_code == 403
    client.logout()
    user_with(organizer, sortir_event, "ok@example.org", **{perm: True})
    assert client.login(email="ok@example.org", password="pw")
    assert client.get(url(sortir_event, view)).status_code == 200


@pytest.mark.django_db
def test_organizer_settings_need_organizer_permission(client, organizer, sortir_event):
    user_with(organizer, sortir_event, "staff@example.org", **{"event.orders:read": True})
    assert client.login(email="staff@example.org", password="pw")
    assert client.get(f"/control/organizer/{organizer.slug}/sortir/").status_code == 403
    assert client.post(f"/control/organizer/{organizer.slug}/sortir/test/").status_code == 403


@pytest.mark.django_db
def test_views_404_when_plugin_disabled(admin_client, sortir_event):
    sortir_event.disable_plugin("pretix_sortir")
    sortir_event.save()
    assert admin_client.get(url(sortir_event, "usages")).status_code == 404
    assert admin_client.get(url(sortir_event, "products")).status_code == 404


@pytest.mark.django_db
def test_resend_needs_write_permission(client, organizer, sortir_event):
    with scopes_disabled():
        u = CardUsage.objects.create(event=sortir_event, card_digest="d1", card_last4="1234", state=CardUsage.GRANT_FAILED)
    user_with(organizer, sortir_event, "reader@example.org", **{"event.orders:read": True})
    assert client.login(email="reader@example.org", password="pw")
    r = client.get(url(sortir_event, "usages"))
    assert b"Send grant again" not in r.content
    assert client.post(url(sortir_event, f"usages/{u.pk}/resend")).status_code == 403


@pytest.mark.django_db
def test_usage_dashboard_counts_filters_and_search(admin_client, sortir_event):
    with scopes_disabled():
        CardUsage.objects.create(event=sortir_event, card_digest="a", card_last4="1111", state=CardUsage.USED)
        CardUsage.objects.create(event=sortir_event, card_digest="b", card_last4="2222", state=CardUsage.GRANT_FAILED)
        CardUsage.objects.create(event=sortir_event, card_digest="c", card_last4="3333", state=CardUsage.RELEASED)
    r = admin_client.get(url(sortir_event, "usages"))
    html = r.content.decode()
    assert 'data-state="used">1<' in html and 'data-state="grant_failed">1<' in html
    r = admin_client.get(url(sortir_event, "usages") + "?state=grant_failed")
    assert b"2222" in r.content and b"1111" not in r.content
    r = admin_client.get(url(sortir_event, "usages") + "?query=3333")
    assert b"3333" in r.content and b"2222" not in r.content


def form_data_of(html, form_selector="form.form-horizontal"):
    """The values a browser would submit for the page's main form, unchanged."""
    from bs4 import BeautifulSoup

    form = BeautifulSoup(html, "html.parser").select(form_selector)[0]
    data = {}
    for el in form.select("input, select, textarea"):
        name = el.get("name")
        if not name or el.get("disabled") is not None:
            continue
        if el.name == "input" and el.get("type") in ("checkbox", "radio"):
            if el.get("checked") is not None:
                data.setdefault(name, []).append(el.get("value", "on"))
        elif el.name == "select":
            chosen = [o.get("value", o.text) for o in el.select("option") if o.get("selected") is not None]
            if chosen:
                data[name] = chosen if el.get("multiple") is not None else chosen[0]
        elif el.name == "textarea":
            data[name] = el.text
        elif el.get("type") not in ("submit", "button", "file"):
            data[name] = el.get("value", "")
    return data


@pytest.mark.django_db
def test_flag_saved_from_the_products_own_page(admin_client, sortir_event, products):
    full, reduced, shirt, v1, v2 = products
    url_item = f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/items/{reduced.pk}/"
    data = form_data_of(admin_client.get(url_item).content.decode())
    data["sortir-requires_card"] = "on"
    r = admin_client.post(url_item, data, follow=True)
    assert r.status_code == 200
    with scopes_disabled():
        assert SortirProduct.objects.filter(item=reduced, variation__isnull=True).exists()
    data = form_data_of(admin_client.get(url_item).content.decode())
    assert data.get("sortir-requires_card") == ["on"]
