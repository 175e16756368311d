"""
Sortir! tickets created outside the checkout (REST API, CSV import, order changes, splits): flagged "no card
yet", refused where pretix lets a plugin refuse, completed by the organiser (order page or REST API).
"""
import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.modelimport import DataImportError
from pretix.base.models import CachedFile, Item, ItemAddOn, ItemCategory, ItemVariation, LogEntry, Order, OrderPayment, Quota, SubEvent, Team
from pretix.base.services.modelimport import import_orders
from pretix.base.services.orders import OrderChangeManager, cancel_order

from pretix_sortir.models import CardUsage, SortirProduct
from pretix_sortir.signals import periodic
from tests.sortir_utils import VALID, VALID2, checkout

VALID3 = "1000000003"


@pytest.fixture
def api_client(organizer, sortir_event):
    team = Team.objects.create(organizer=organizer, name="API", all_events=True, all_event_permissions=True)
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {team.tokens.create(name='api').token}"
    return client


def api(event, path=""):
    return f"/api/v1/organizers/{event.organizer.slug}/events/{event.slug}/{path}"


def api_order(api_client, event, *items, status="n", subevent=None):
    positions = [{"positionid": i + 1, "item": it.pk, "price": str(it.default_price), "subevent": subevent.pk if subevent else None}
                 for i, it in enumerate(items)]
    body = {"email": "buyer@example.org", "locale": "en", "sales_channel": "web", "positions": positions,
            "payment_provider": "manual", "status": status}
    r = api_client.post(api(event, "orders/"), body, content_type="application/json")
    assert r.status_code == 201, r.content
    with scopes_disabled():
        return Order.objects.get(code=r.json()["code"])


def usages(**filters):
    with scopes_disabled():
        return list(CardUsage.objects.filter(**filters).select_related("order", "order_position").order_by("pk"))


def pay(order):
    with scopes_disabled():
        p = order.payments.create(provider="manual", amount=order.total, state=OrderPayment.PAYMENT_STATE_CREATED)
        p.confirm(send_mail=False)
        order.refresh_from_db()


def grants(fake):
    return fake.received("POST", "/api/partners/grant")


def order_page(event, order):
    return f"/control/event/{event.organizer.slug}/{event.slug}/orders/{order.code}/"


def attach_url(event, usage):
    return f"/control/event/{event.organizer.slug}/{event.slug}/sortir/usages/{usage.pk}/attach/"


# -- REST API ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_api_order_gets_flagged_on_order_page_dashboard_and_api(api_client, admin_client, sortir_event, paid_sortir_item, item):
    order = api_order(api_client, sortir_event, paid_sortir_item, item)
    (u,) = usages()
    assert u.state == CardUsage.MISSING and u.order == order and u.order_position.positionid == 1 and u.card_digest == ""
    with scopes_disabled():
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.missing_many", object_id=order.pk).exists()

    page = admin_client.get(order_page(sortir_event, order)).content.decode()
    assert "sortir-missing" in page and "No card" in page and attach_url(sortir_event, u) in page

    dash = f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/usages/"
    r = admin_client.get(dash).content.decode()
    assert "1 Sortir! ticket of a pending or paid order has no card yet" in r and 'data-state="missing">1<' in r

    listed = api_client.get(api(sortir_event, "sortir_usages/")).json()["results"]
    assert [(x["order"], x["positionid"], x["state"], x["needs_card"]) for x in listed] == [(order.code, 1, "missing", True)]


@pytest.mark.django_db
def test_dashboard_filter_shows_only_tickets_without_card(api_client, admin_client, client, sortir_event, paid_sortir_item):
    flagged = api_order(api_client, sortir_event, paid_sortir_item)
    carded = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    dash = f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/usages/"
    r = admin_client.get(dash + "?state=missing").content.decode()
    assert flagged.code in r and carded.code not in r
    r = admin_client.get(dash + "?state=validated").content.decode()
    assert flagged.code not in r and carded.code in r
    assert "has no card yet" in admin_client.get(dash).content.decode()
    with scopes_disabled():
        cancel_order(flagged.pk)
    assert "has no card yet" not in admin_client.get(dash).content.decode()  # nothing left to attach


@pytest.mark.django_db
def test_api_attach_card_to_paid_order_sends_grant_once(api_client, sortir_event, paid_sortir_item, fake_apras):
    order = api_order(api_client, sortir_event, paid_sortir_item, status="p")
    assert order.status == Order.STATUS_PAID
    (u,) = usages()
    assert u.state == CardUsage.MISSING
    url = api(sortir_event, f"sortir_usages/{u.pk}/attach_card/")

    r = api_client.post(url, {"card_number": "9999999999"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "unknown" and "9999999999" not in r.content.decode()
    r = api_client.post(url, {"card_number": "123"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "format"

    r = api_client.post(url, {"card_number": VALID}, content_type="application/json")
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "grant_pending" and r.json()["card_last4"] == "0001" and r.json()["needs_card"] is False
    (u,) = usages()
    assert u.card_digest and u.service_key_secret and VALID not in u.service_key_secret
    with scopes_disabled():
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.attached", object_id=order.pk).exists()
        assert VALID not in "".join(LogEntry.objects.values_list("data", flat=True))
    periodic(sender=None)
    assert usages()[0].state == CardUsage.USED
    assert [g.json for g in grants(fake_apras)] == [{"token": fake_apras.service_key(VALID)}]

    assert api_client.post(url, {"card_number": VALID2}, content_type="application/json").status_code == 409


@pytest.mark.django_db
def test_api_attach_needs_write_permission(organizer, api_client, sortir_event, paid_sortir_item):
    api_order(api_client, sortir_event, paid_sortir_item)
    (u,) = usages()
    team = Team.objects.create(organizer=organizer, name="Read", all_events=True, limit_event_permissions={"event.orders:read": True})
    reader = Client()
    reader.defaults["HTTP_AUTHORIZATION"] = f"Token {team.tokens.create(name='r').token}"
    assert reader.get(api(sortir_event, "sortir_usages/")).status_code == 200
    r = reader.post(api(sortir_event, f"sortir_usages/{u.pk}/attach_card/"), {"card_number": VALID}, content_type="application/json")
    assert r.status_code == 403 and usages()[0].state == CardUsage.MISSING


@pytest.mark.django_db
def test_attach_refuses_card_used_for_the_same_event(api_client, sortir_event, paid_sortir_item):
    checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    api_order(api_client, sortir_event, paid_sortir_item)
    missing = usages(state=CardUsage.MISSING)[0]
    r = api_client.post(api(sortir_event, f"sortir_usages/{missing.pk}/attach_card/"), {"card_number": VALID},
                        content_type="application/json")
    assert r.status_code == 400 and r.json()["code"] == "already_used"
    assert usages(pk=missing.pk)[0].state == CardUsage.MISSING


# -- control panel ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_control_attach_form_then_payment_sends_grant(api_client, admin_client, sortir_event, paid_sortir_item, fake_apras):
    order = api_order(api_client, sortir_event, paid_sortir_item)
    (u,) = usages()
    r = admin_client.post(attach_url(sortir_event, u), {"card_number": "1000 0000 02"}, follow=True)
    assert "Card •••• 0002 attached to ticket #1." in r.content.decode()
    u = usages()[0]
    assert u.state == CardUsage.VALIDATED and u.card_last4 == "0002"
    page = admin_client.get(order_page(sortir_event, order)).content.decode()
    assert "•••• 0002" in page and "sortir-missing" not in page
    pay(order)
    periodic(sender=None)
    assert usages()[0].state == CardUsage.USED and len(grants(fake_apras)) == 1


@pytest.mark.django_db
def test_control_attach_shows_the_reason_and_needs_write_permission(
        client, api_client, admin_client, organizer, sortir_event, paid_sortir_item):
    api_order(api_client, sortir_event, paid_sortir_item)
    (u,) = usages()
    r = admin_client.post(attach_url(sortir_event, u), {"card_number": "9999999999"}, follow=True)
    assert "The card could not be attached: This Sortir! card is unknown" in r.content.decode()
    assert usages()[0].state == CardUsage.MISSING

    from django.contrib.auth import get_user_model
    reader = get_user_model().objects.create_user("reader@example.org", "pw")
    team = Team.objects.create(organizer=organizer, name="R", all_events=True, limit_event_permissions={"event.orders:read": True})
    team.members.add(reader)
    assert client.login(email="reader@example.org", password="pw")
    assert client.post(attach_url(sortir_event, u), {"card_number": VALID}).status_code == 403
    assert usages()[0].state == CardUsage.MISSING


@pytest.mark.django_db
def test_event_setting_page(admin_client, sortir_event):
    url = f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/settings/"
    r = admin_client.get(url)
    assert r.status_code == 200 and "Sortir! tickets without a card" in r.content.decode()
    assert url in admin_client.get(url.replace("/settings/", "/usages/")).content.decode()  # in the Sortir! menu
    assert sortir_event.settings.pretix_sortir_orders_without_card == "refuse"
    r = admin_client.post(url, {"pretix_sortir_orders_without_card": "allow"}, follow=True)
    assert "Your changes have been saved." in r.content.decode()
    sortir_event.settings.flush()
    assert sortir_event.settings.pretix_sortir_orders_without_card == "allow"


# -- CSV import -------------------------------------------------------------------------------------

def run_import(event, user, rows, status="pending"):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["Product", "Email", "Card"])
    w.writerows(rows)
    with scopes_disabled():
        cf = CachedFile.objects.create(expires=now() + timedelta(days=1), date=now(), filename="in.csv", type="text/csv")
        cf.file.save("in.csv", ContentFile(buf.getvalue().encode()))
    settings = {"orders": "many", "testmode": False, "status": status, "item": "csv:Product", "email": "csv:Email",
                "pretix_sortir_card": "csv:Card", "sales_channel": "static:web", "locale": "static:en"}
    return import_orders.apply(args=(event.pk, str(cf.id), settings, "en", user.pk)).get()


@pytest.mark.django_db
def test_import_checks_card_and_paid_import_sends_grant(sortir_event, paid_sortir_item, item, admin_user, fake_apras):
    run_import(sortir_event, admin_user, [[paid_sortir_item.pk, "a@example.org", VALID],
                                          [item.pk, "b@example.org", ""]], status="paid")
    (u,) = usages()
    assert u.state == CardUsage.GRANT_PENDING and u.card_last4 == "0001" and u.order.status == Order.STATUS_PAID
    assert [r.path for r in fake_apras.received("GET")] == [f"/api/partners/{VALID}"]
    periodic(sender=None)
    assert usages()[0].state == CardUsage.USED and len(grants(fake_apras)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("rows,message", [
    ([["P", "a@example.org", ""]], "requires a Sortir! card number, and this event refuses tickets without a card"),
    ([["P", "a@example.org", "9999999999"]], "card •••• 9999: This Sortir! card is unknown"),
    ([["P", "a@example.org", VALID], ["P", "b@example.org", VALID]], "card •••• 0001 appears twice in this file"),
    ([["N", "a@example.org", VALID]], "this product does not require a Sortir! card"),
])
def test_import_refuses_bad_rows(sortir_event, paid_sortir_item, item, admin_user, rows, message):
    ids = {"P": paid_sortir_item.pk, "N": item.pk}
    with pytest.raises(DataImportError) as e:
        run_import(sortir_event, admin_user, [[ids[r[0]]] + r[1:] for r in rows])
    assert message in str(e.value) and "9999999999" not in str(e.value) and VALID not in str(e.value)
    with scopes_disabled():
        assert not Order.objects.exists() and not CardUsage.objects.exists()


@pytest.mark.django_db
def test_import_card_used_elsewhere_is_refused(client, sortir_event, paid_sortir_item, admin_user):
    checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with pytest.raises(DataImportError) as e:
        run_import(sortir_event, admin_user, [[paid_sortir_item.pk, "a@example.org", VALID]])
    assert "already been used for this event" in str(e.value)


@pytest.mark.django_db
def test_import_without_card_allowed_by_event_setting_is_flagged(sortir_event, paid_sortir_item, admin_user):
    sortir_event.settings.set("pretix_sortir_orders_without_card", "allow")
    run_import(sortir_event, admin_user, [[paid_sortir_item.pk, "a@example.org", ""]])
    (u,) = usages()
    assert u.state == CardUsage.MISSING and u.order.status == Order.STATUS_PENDING


def control_import(admin_client, event, rows):
    base = f"/control/event/{event.organizer.slug}/{event.slug}/orders/import/"
    buf = io.StringIO()
    csv.writer(buf).writerows([["Product", "Email", "Sortir! card number"]] + rows)
    upload = ContentFile(buf.getvalue().encode(), name="in.csv")
    r = admin_client.post(base, {"file": upload, "charset": "utf8"})
    assert r.status_code == 302, r.content
    process = r["Location"]
    r = admin_client.get(process)
    form = r.context["form"]
    assert form.initial["pretix_sortir_card"] == "csv:Sortir! card number"  # found by its name
    data = {}
    for name, field in form.fields.items():  # every other column "keep empty", or its first fixed value
        choices = [c[0] for c in getattr(field, "choices", [])]
        data[name] = "empty" if "empty" in choices else next((c for c in choices if c.startswith("static:")), "")
    data.update({"orders": "many", "status": "pending", "testmode": "", "item": "csv:Product", "email": "csv:Email",
                 "sales_channel": "static:web", "locale": "static:en"})
    data["pretix_sortir_card"] = form.initial["pretix_sortir_card"]
    r = admin_client.post(process, data, follow=True)
    return r


@pytest.mark.django_db
def test_control_import_page_offers_the_card_column(admin_client, sortir_event, paid_sortir_item):
    r = control_import(admin_client, sortir_event, [[paid_sortir_item.pk, "a@example.org", "1000-0000-01"]])
    assert r.status_code == 200
    (u,) = usages()
    assert u.state == CardUsage.VALIDATED and u.card_last4 == "0001" and u.order.status == Order.STATUS_PENDING


@pytest.mark.django_db
def test_control_import_shows_why_a_row_is_refused(admin_client, sortir_event, paid_sortir_item):
    r = control_import(admin_client, sortir_event, [[paid_sortir_item.pk, "a@example.org", ""]])
    assert "requires a Sortir! card number, and this event refuses tickets without a card" in r.content.decode()
    with scopes_disabled():
        assert not Order.objects.exists()


# -- order changes ----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_added_position_and_product_change_to_sortir_are_flagged(api_client, sortir_event, paid_sortir_item, item):
    order = api_order(api_client, sortir_event, item)
    assert usages() == []
    with scopes_disabled():
        plain = order.positions.get()
        ocm = OrderChangeManager(order)
        ocm.add_position(paid_sortir_item, None, Decimal("4.50"))
        ocm.commit()
    (added,) = usages()
    assert added.state == CardUsage.MISSING and added.order_position.positionid == 2
    with scopes_disabled():
        order.refresh_from_db()
        ocm = OrderChangeManager(order)
        ocm.change_item(plain, paid_sortir_item, None)
        ocm.commit()
    assert sorted(u.order_position.positionid for u in usages(state=CardUsage.MISSING)) == [1, 2]
    with scopes_disabled():
        order.refresh_from_db()
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.get(positionid=2), item, None)
        ocm.commit()
    assert [u.order_position.positionid for u in usages(state=CardUsage.MISSING)] == [1]  # #2 needs no card any more


@pytest.mark.django_db
def test_product_change_to_plain_product_releases_card_even_without_release_on_cancel(
        client, sortir_event, paid_sortir_item, item, organizer):
    organizer.settings.set("pretix_sortir_release_on_cancel", False)
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.get(), item, None)
        ocm.commit()
    assert [u.state for u in usages()] == [CardUsage.RELEASED]


@pytest.mark.django_db
def test_variation_change_follows_the_sortir_flag_of_the_variation(api_client, client, sortir_event, fake_apras):
    workshop = Item.objects.create(event=sortir_event, name="Workshop", default_price=Decimal("10.00"), admission=True)
    reduced = ItemVariation.objects.create(item=workshop, value="Sortir!", default_price=Decimal("3.00"))
    normal = ItemVariation.objects.create(item=workshop, value="Normal")
    q = Quota.objects.create(event=sortir_event, name="Workshop", size=10)
    q.items.add(workshop)
    q.variations.add(reduced, normal)
    SortirProduct.objects.create(event=sortir_event, item=workshop, variation=reduced)

    r = api_client.post(api(sortir_event, "orders/"), {
        "email": "b@example.org", "locale": "en", "sales_channel": "web", "payment_provider": "manual",
        "positions": [{"positionid": 1, "item": workshop.pk, "variation": normal.pk, "price": "10.00"}],
    }, content_type="application/json")
    assert r.status_code == 201, r.content
    with scopes_disabled():
        order = Order.objects.get(code=r.json()["code"])
    assert usages() == []
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.get(), workshop, reduced)
        ocm.commit()
    (u,) = usages()
    assert u.state == CardUsage.MISSING
    r = api_client.post(api(sortir_event, f"sortir_usages/{u.pk}/attach_card/"), {"card_number": VALID3},
                        content_type="application/json")
    assert r.status_code == 200 and r.json()["state"] == "validated"
    with scopes_disabled():
        order.refresh_from_db()
        ocm = OrderChangeManager(order)
        ocm.change_item(order.positions.get(), workshop, normal)
        ocm.commit()
    assert [u.state for u in usages()] == [CardUsage.RELEASED]


@pytest.fixture
def dates(sortir_event, paid_sortir_item):
    sortir_event.has_subevents = True
    sortir_event.save()
    days = [SubEvent.objects.create(event=sortir_event, name=f"Day {n}", date_from=now() + timedelta(days=10 + n), active=True)
            for n in (1, 2, 3)]
    for d in days:
        sortir_event.quotas.create(name=f"q{d.pk}", size=10, subevent=d).items.add(paid_sortir_item)
    return days


@pytest.mark.django_db
def test_date_change_checks_the_card_for_the_new_date(api_client, sortir_event, paid_sortir_item, dates, fake_apras):
    d1, d2, d3 = dates
    first = api_order(api_client, sortir_event, paid_sortir_item, subevent=d1)
    other = api_order(api_client, sortir_event, paid_sortir_item, subevent=d2)
    for order in (first, other):
        (u,) = usages(order=order)
        r = api_client.post(api(sortir_event, f"sortir_usages/{u.pk}/attach_card/"), {"card_number": VALID},
                            content_type="application/json")
        assert r.status_code == 200, r.content  # one card, two dates: allowed

    with scopes_disabled():  # to a free date: the card follows
        ocm = OrderChangeManager(first)
        ocm.change_subevent(first.positions.get(), d3)
        ocm.commit()
    (u,) = usages(order=first)
    assert u.state == CardUsage.VALIDATED and u.date_key == d3.pk and u.subevent_id == d3.pk

    with scopes_disabled():  # to the date where the card is already used: released, the ticket is flagged
        first.refresh_from_db()
        ocm = OrderChangeManager(first)
        ocm.change_subevent(first.positions.get(), d2)
        ocm.commit()
        assert LogEntry.objects.filter(action_type="pretix_sortir.usage.taken_on_new_date", object_id=first.pk).exists()
    assert [(u.state, u.date_key) for u in usages(order=first)] == [(CardUsage.RELEASED, d3.pk), (CardUsage.MISSING, d2.pk)]
    assert [(u.state, u.date_key) for u in usages(order=other)] == [(CardUsage.VALIDATED, d2.pk)]


@pytest.fixture
def addon_shop(sortir_event, paid_sortir_item, item):
    cat = ItemCategory.objects.create(event=sortir_event, name="Extras", is_addon=True)
    paid_sortir_item.category = cat
    paid_sortir_item.save()
    ItemAddOn.objects.create(base_item=item, addon_category=cat, min_count=0, max_count=2)
    sortir_event.settings.set("change_allow_user_addons", True)
    return item, paid_sortir_item


def buyer_change(event, order, data):
    url = f"/{event.organizer.slug}/{event.slug}/order/{order.code}/{order.secret}/change"
    return Client().post(url, data, follow=True)


@pytest.mark.django_db
@pytest.mark.parametrize("setting", ["refuse", "allow"])
def test_buyer_addon_change(api_client, sortir_event, addon_shop, setting):
    base_item, sortir_addon = addon_shop
    sortir_event.settings.set("pretix_sortir_orders_without_card", setting)
    order = api_order(api_client, sortir_event, base_item)
    with scopes_disabled():
        pos = order.positions.get()
    r = buyer_change(sortir_event, order, {f"cp_{pos.pk}_item_{sortir_addon.pk}": "1", "confirm": "true"})
    with scopes_disabled():
        added = order.positions.filter(item=sortir_addon).count()
    if setting == "refuse":
        assert "cannot be added to an existing order" in r.content.decode() and added == 0 and usages() == []
    else:
        assert added == 1
        assert [(u.state, u.order_position.addon_to_id) for u in usages()] == [(CardUsage.MISSING, pos.pk)]


# -- order split ------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_split_order_takes_its_card_along(client, sortir_event, paid_sortir_item, fake_apras, organizer):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID, VALID2], pay_manually=True)
    with scopes_disabled():
        ocm = OrderChangeManager(order)
        ocm.split(order.positions.get(positionid=2))
        ocm.commit()
        split = ocm.split_order
    moved = usages(card_last4="0002")[0]
    assert moved.order == split and moved.state == CardUsage.VALIDATED
    assert usages(card_last4="0001")[0].order == order

    pay(split)
    periodic(sender=None)
    assert [g.json for g in grants(fake_apras)] == [{"token": fake_apras.service_key(VALID2)}]
    assert usages(card_last4="0002")[0].state == CardUsage.USED

    with scopes_disabled():
        cancel_order(order.pk)
    assert usages(card_last4="0001")[0].state == CardUsage.RELEASED
    assert usages(card_last4="0002")[0].state == CardUsage.USED


# -- exporter ---------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)  # pretix's export task sets the isolation level on PostgreSQL: no wrapping transaction
def test_exporter_has_card_missing_column(api_client, sortir_event, paid_sortir_item):
    flagged = api_order(api_client, sortir_event, paid_sortir_item)
    carded = checkout(Client(), sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    base = api(sortir_event, "exporters/")
    r = api_client.post(base + "pretix_sortir_usages/run/", {"_format": "default"}, content_type="application/json")
    assert r.status_code == 202, r.content
    r = api_client.get(r.json()["download"])
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode() if hasattr(r, "streaming_content") else r.content.decode())))
    col = rows[0].index("Card missing")
    assert {row[0]: (row[4], row[col]) for row in rows[1:]} == {flagged.code: ("", "yes"), carded.code: ("0001", "")}
