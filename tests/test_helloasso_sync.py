"""The sync engine against the fake HelloAsso over HTTP: full import, re-sync, refunds, chargebacks, quotas, interruptions."""
from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import Order, OrderPosition, Quota

from pretix_helloasso_bridge.models import FormLink, RemoteObject, SyncReport
from pretix_helloasso_bridge.sync import run_sync

FORM = "Event/soiree-de-gala-2026"


@pytest.fixture
def linked(ha_event):
    FormLink.objects.create(event=ha_event, form_ref=FORM)
    return ha_event


def orders_of(event):
    with scopes_disabled():
        return {ro.remote_id: ro.order for ro in RemoteObject.objects.filter(event=event, kind="order").select_related("order")}


@pytest.mark.django_db
def test_full_import_then_resync_without_duplicates(linked, ha_connected):
    report = run_sync(linked)
    assert report.state == SyncReport.SUCCESS, report.error
    assert (report.orders_created, report.orders_cancelled, report.orders_refunded, report.skipped) == (3, 1, 1, []), report.skipped
    with scopes_disabled():
        orders = orders_of(linked)
        a = orders["128450311"]
        assert a.status == Order.STATUS_PAID and a.total == Decimal("52.00") and a.email == "claire.martin@example.org"
        assert a.sales_channel.identifier == "helloasso"
        pos = list(a.positions.order_by("positionid"))
        assert [(str(p.item.name), p.price) for p in pos] == [("Entrée plein tarif", Decimal("25.00")), ("Repas du soir", Decimal("12.00")),
                                                               ("Entrée tarif réduit", Decimal("15.00"))]
        assert pos[1].addon_to == pos[0]
        assert pos[0].attendee_name == "Claire Martin"
        assert {str(an.question.question): an.answer for an in pos[0].answers.all()} == {"Taille de t-shirt": "M",
                                                                                          "Club ou association": "Les Balles Folles"}
        assert a.invoice_address.country == "FR" and a.invoice_address.city == "Lyon"
        assert a.datetime.isoformat().startswith("2026-04-03T18:14:52")
        [pay] = a.payments.all()
        assert pay.provider == "helloasso" and pay.amount == Decimal("52.00") and pay.state == "confirmed"
        assert all(not it.all_sales_channels for it in linked.items.all())
        c = orders["128451002"]
        assert c.status == Order.STATUS_PAID and c.positions.count() == 1 and c.total == 0
    calls = report.api_calls
    again = run_sync(linked)
    assert again.state == SyncReport.SUCCESS and again.orders_created == 0
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == len(orders_of(linked))
        assert linked.items.count() == 4  # 3 rates and 1 option, no duplicate
    assert calls <= 5
