"""Billetweb through the bridge's engine, against the fake Billetweb over HTTP."""
from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import CheckinList, Order, OrderPosition, Question, Team

from pretix_helloasso_bridge.models import FormLink, SyncReport
from pretix_helloasso_bridge.sync import run_sync
from pretix_integrations_core.errors import ServiceConfigurationError, ServiceRateLimited

from .helloasso_utils import orders_of, position, sync


@pytest.fixture
def linked(bw_event):
    FormLink.objects.create(event=bw_event, provider="billetweb", form_ref="1350001")
    return bw_event


@pytest.mark.django_db
def test_full_import_then_resync_without_duplicates(linked, bw_connected):
    report = sync(linked)
    assert report.orders_created == 5 and not report.skipped, report.skipped
    orders = orders_of(linked)
    with scopes_disabled():
        claire = orders["264751"]
        assert claire.status == Order.STATUS_PAID and claire.email == "claire.martin@example.org"
        assert claire.total == Decimal("40.00") and claire.sales_channel.identifier == "billetweb"
        p1, p2 = claire.positions.order_by("positionid")
        assert p1.secret == "4475320" and p2.secret == "4475321"  # the barcode is the ticket secret
        assert p1.attendee_name == "Claire Martin" and p1.attendee_email == "claire.martin@example.org"
        assert p2.attendee_name == "Léo Martin" and not p2.attendee_email
        assert str(p1.item.name) == "Soirée > Plein tarif" and p1.price == Decimal("25.00")
        assert p1.item.tax_rule.rate == Decimal("5.50")
        answers = {str(a.question.question): a.answer for a in p1.answers.all()}
        assert answers == {"Taille de t-shirt": "M", "Club ou association": "Photo-club de Lyon"}
        assert Question.objects.filter(event=linked).count() == 2
        assert orders["264790"].status == Order.STATUS_CANCELED  # refunded before the first import
        assert orders["264790"].refunds.filter(state="done").exists()
        assert orders["264802"].status == Order.STATUS_PAID and orders["264802"].total == 0  # free invitation
        assert orders["264815"].positions.count() == 2  # the pass and its included ticket, each with its barcode
        assert orders["264820"].status == Order.STATUS_PENDING  # unpaid reservation
        linked.refresh_from_db()
        assert not linked.has_subevents
        assert linked.date_from.isoformat() == "2026-06-20T17:30:00+00:00"  # 19:30 in Paris (summer time)
        n = OrderPosition.all.filter(order__event=linked).count()
    again = sync(linked)
    assert again.orders_created == 0 and again.orders_updated == 0
    again = sync(linked, full=True)
    assert again.orders_created == 0 and again.orders_updated == 0 and again.orders_cancelled == 0
    with scopes_disabled():
        assert OrderPosition.all.filter(order__event=linked).count() == n
        assert Order.objects.filter(event=linked).count() == 5


@pytest.mark.django_db
def test_incremental_sync_new_order_payment_refund_and_deletion(linked, bw_connected):
    sync(linked)
    oid, rows = bw_connected.add_order(tickets=["12693", "12694"], custom={"Repas": "Végétarien"})
    bw_connected.mark_paid("264820")
    calls_before = len(bw_connected.received(path=r"^/api/event/1350001/attendees"))
    report = sync(linked)
    assert report.orders_created == 1 and report.orders_updated == 1
    attendee_calls = bw_connected.received(path=r"^/api/event/1350001/attendees")[calls_before:]
    assert attendee_calls[0].arg("last_update")  # incremental: asked what changed first
    orders = orders_of(linked)
    with scopes_disabled():
        assert orders[oid].status == Order.STATUS_PAID and orders[oid].positions.count() == 2
        assert {p.secret for p in orders[oid].positions.all()} == {r["barcode"] for r in rows}
        assert Question.objects.filter(event=linked, question="Repas").exists()
        assert orders["264820"].status == Order.STATUS_PAID
    # one ticket refunded, then a whole order refunded
    bw_connected.refund_ticket(rows[1]["id"])
    report = sync(linked)
    assert report.orders_cancelled == 1
    with scopes_disabled():
        o = Order.objects.get(pk=orders[oid].pk)
        assert o.status == Order.STATUS_PAID and o.positions.count() == 1
        assert position(linked, rows[1]["id"]).canceled
    bw_connected.refund_ticket(rows[0]["id"])
    sync(linked)
    with scopes_disabled():
        o.refresh_from_db()
        assert o.status == Order.STATUS_CANCELED and o.refunds.filter(state="done").exists()
    # deletions are invisible to the incremental read; the periodic full read catches them
    bw_connected.delete_order("264751")
    bw_connected.delete_ticket("656161")
    sync(linked)
    with scopes_disabled():
        assert orders_of(linked)["264751"].status == Order.STATUS_PAID
    report = sync(linked, full=True)
    assert report.orders_cancelled == 2
    with scopes_disabled():
        assert orders_of(linked)["264751"].status == Order.STATUS_CANCELED
        assert position(linked, "656161").canceled and not position(linked, "656160").canceled


@pytest.mark.django_db
def test_several_sessions_become_an_event_series(bw_event, bw_connected):
    FormLink.objects.create(event=bw_event, provider="billetweb", form_ref="1350002")
    sync(bw_event)
    with scopes_disabled():
        bw_event.refresh_from_db()
        assert bw_event.has_subevents
        subs = {s.date_from.isoformat(): s for s in bw_event.subevents.all()}
        assert set(subs) == {"2026-07-04T12:00:00+00:00", "2026-07-05T08:00:00+00:00"}
        order = orders_of(bw_event)["265001"]
        assert {p.subevent_id for p in order.positions.all()} == {subs["2026-07-04T12:00:00+00:00"].pk}
        assert order.total == Decimal("30.00") and order.status == Order.STATUS_PAID
        for sub in subs.values():  # pretix counts per date: each date has a quota with the products
            assert sub.quotas.get().items.count() == 2
    oid, _rows = bw_connected.add_order("1350002", tickets=["12701"], session="7002")
    sync(bw_event)
    with scopes_disabled():
        assert orders_of(bw_event)[oid].positions.get().subevent == subs["2026-07-05T08:00:00+00:00"]


@pytest.mark.django_db
def test_key_restricted_to_some_events_works_for_them_and_says_so_for_the_others(linked, bw_connected):
    bw_connected.restrict_key(["1350001"])
    sync(linked)
    assert len(orders_of(linked)) == 5
    assert not bw_connected.received(path=r"^/api/attendees$")  # the all-events route is never used
    bw_connected.restrict_key(["1350002"])
    with pytest.raises(ServiceConfigurationError):
        run_sync(linked)
    with scopes_disabled():
        report = SyncReport.objects.filter(event=linked).first()
        assert report.state == SyncReport.FAILED and "does not give access to this event" in report.error


@pytest.mark.django_db
def test_rate_limit_and_challenge_page_are_reported_as_such(linked, bw_connected):
    bw_connected.challenge_next()
    with pytest.raises(ServiceRateLimited):
        run_sync(linked)
    with scopes_disabled():
        report = SyncReport.objects.filter(event=linked).first()
        assert "challenge page" in report.error
    assert len(bw_connected.received()) == 1  # stopped at once: no retry into the firewall
    bw_connected.rate_limit = 2
    with pytest.raises(ServiceRateLimited):
        run_sync(linked)
    with scopes_disabled():
        report = SyncReport.objects.filter(event=linked).first()
        assert "100 requests a minute" in report.error
    bw_connected.rate_limit = 100
    sync(linked)
    assert len(orders_of(linked)) == 5


@pytest.mark.django_db
def test_account_budget_keeps_requests_under_the_limit(linked, bw_connected, monkeypatch):
    from pretix_helloasso_bridge.providers import billetweb

    monkeypatch.setattr(billetweb, "BUDGET_LIMIT", 3)
    monkeypatch.setattr(billetweb, "BUDGET_WINDOW", 1.0)
    import time
    from collections import Counter

    started = time.time()
    sync(linked)
    sync(linked)  # 3 + 3 requests: the fourth waits for the next window of the account's budget
    assert time.time() - started < 5
    times = [r.received_at for r in bw_connected.received()]
    assert len(times) == 6
    assert max(Counter(int(t // 1.0) for t in times).values()) <= 3


@pytest.mark.django_db
def test_sync_killed_midway_is_resumed(linked, bw_connected, monkeypatch):
    from django.apps import apps

    from pretix.base.signals import order_placed

    from pretix_helloasso_bridge.providers import billetweb

    monkeypatch.setattr(billetweb, "PAGE_SIZE", 4)
    bw_connected.add_orders(6)
    calls = []

    def dying(sender, order, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # in the second page
            raise KeyboardInterrupt()

    setattr(dying, "__mocked_app", apps.get_app_config("pretix_helloasso_bridge"))
    order_placed.connect(dying, dispatch_uid="test_bw_dying")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(linked)
    finally:
        order_placed.disconnect(dispatch_uid="test_bw_dying")
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 4  # the first page, committed
        assert FormLink.objects.get(event=linked).cursor
    report = sync(linked)
    assert report.orders_created == 7
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 11
        assert SyncReport.objects.filter(event=linked, state=SyncReport.FAILED, error__startswith="Interrupted").count() == 1


@pytest.mark.django_db
def test_billetweb_barcode_checks_in_through_pretix_api(linked, organizer, client):
    sync(linked)
    with scopes_disabled():
        cl = CheckinList.objects.create(event=linked, name="Door", all_products=True)
        token = Team.objects.create(organizer=organizer, name="Scan", all_events=True,
                                    limit_event_permissions={"event.orders:checkin": True, "event.orders:read": True}).tokens.create(name="s").token
    r = client.post(f"/api/v1/organizers/{organizer.slug}/checkinrpc/redeem/", {"secret": "4475320", "lists": [cl.pk]},
                    content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "ok" and r.json()["position"]["attendee_name"] == "Claire Martin"
    r = client.post(f"/api/v1/organizers/{organizer.slug}/checkinrpc/redeem/", {"secret": "4475388", "lists": [cl.pk]},
                    content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.json()["status"] == "error" and r.json()["reason"] == "canceled"  # the refunded ticket does not get in


@pytest.mark.django_db
def test_one_request_at_a_time_per_account():
    import threading
    import time

    from pretix_helloasso_bridge.providers.common import AccountBudget

    active, peak, lock = [0], [0], threading.Lock()

    def request():
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return True

    def worker():
        budget = AccountBudget("Billetweb", "same-account", limit=100, window=60)  # each sync has its own client
        for _i in range(4):
            assert budget.call(request, "test")

    threads = [threading.Thread(target=worker) for _i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and active[0] == 0


@pytest.mark.django_db
def test_key_never_in_logs_or_reports(linked, bw_connected, caplog):
    import logging

    from pretix_integrations_core.testing.billetweb import DEMO_KEY

    caplog.set_level(logging.DEBUG)
    sync(linked)
    bw_connected.rate_limit = 0
    with pytest.raises(ServiceRateLimited):
        run_sync(linked)
    with scopes_disabled():
        errors = " ".join(SyncReport.objects.filter(event=linked).values_list("error", flat=True))
    assert DEMO_KEY not in caplog.text and DEMO_KEY not in errors


def answers_of(op):
    with scopes_disabled():
        return {str(a.question.question): a.answer for a in op.answers.all()}


@pytest.mark.django_db
def test_order_level_answers_on_the_first_ticket_resync_and_change(linked, bw_connected, admin_client):
    from pretix.base.models import QuestionAnswer

    sync(linked)
    oid, rows = bw_connected.add_order(tickets=["12693", "12694"], custom={"Repas": "Normal"},
                                       custom_order={"Téléphone": "0611223344", "Société": "Atelier Martin", "Vide": ""})
    assert sync(linked).orders_created == 1
    first, second = position(linked, rows[0]["id"]), position(linked, rows[1]["id"])
    # pretix has no order-level question: the buyer's answers go on the order's first ticket, asked once
    assert answers_of(first) == {"Repas": "Normal", "Téléphone": "0611223344", "Société": "Atelier Martin"}
    assert answers_of(second) == {"Repas": "Normal"}
    with scopes_disabled():
        order = orders_of(linked)[oid]
        questions = Question.objects.filter(event=linked).count()
        n_answers = QuestionAnswer.objects.filter(orderposition__order__event=linked).count()
    page = admin_client.get(f"/control/event/{linked.organizer.slug}/{linked.slug}/orders/{order.code}/")
    assert page.status_code == 200
    assert "0611223344" in page.content.decode() and "Atelier Martin" in page.content.decode()
    # a re-sync (incremental, then full) changes nothing
    for kw in ({}, {"full": True}):
        report = sync(linked, **kw)
        assert report.orders_created == 0 and report.orders_updated == 0
    with scopes_disabled():
        assert Question.objects.filter(event=linked).count() == questions
        assert QuestionAnswer.objects.filter(orderposition__order__event=linked).count() == n_answers
    # an answer changed on Billetweb, another one given later: updated in place, logged, no new question for a known label
    bw_connected.set_order_answers(oid, {"Téléphone": "0699887766", "Société": "Atelier Martin", "Vide": "rempli"})
    assert sync(linked).orders_updated == 1
    assert answers_of(first) == {"Repas": "Normal", "Téléphone": "0699887766", "Société": "Atelier Martin", "Vide": "rempli"}
    assert answers_of(second) == {"Repas": "Normal"}
    with scopes_disabled():
        assert Question.objects.filter(event=linked).count() == questions + 1  # "Vide" was never answered before
        assert QuestionAnswer.objects.filter(orderposition__order__event=linked).count() == n_answers + 1
        log = order.all_logentries().filter(action_type="pretix.event.order.modified").get()
        assert {c["answer"] for c in log.parsed_data["data"]} == {"0699887766", "rempli"}
    assert sync(linked, full=True).orders_updated == 0


@pytest.mark.django_db
def test_platform_scans_become_checkins_once(linked, bw_connected):
    from pretix.base.models import Checkin

    sync(linked)
    claire1, claire2 = position(linked, "656087"), position(linked, "656088")
    with scopes_disabled():
        # the sample's scanned ticket (used "1", used_date 19:42:10 in Paris): one entry on the event's default list
        ci = Checkin.objects.get(position=claire1)
        assert ci.type == Checkin.TYPE_ENTRY and ci.datetime.isoformat() == "2026-06-20T17:42:10+00:00"
        assert ci.list.subevent is None and ci.list.all_products
        assert not Checkin.objects.filter(position=claire2).exists()
        assert Checkin.objects.filter(position__order__event=linked).count() == 1
        assert claire1.order.all_logentries().filter(action_type="pretix.event.checkin").count() == 1
    bw_connected.scan("656088", "2026-06-20 20:05:00")
    assert sync(linked).orders_updated == 1
    for kw in ({}, {"full": True}):
        assert sync(linked, **kw).orders_updated == 0
    with scopes_disabled():
        assert Checkin.objects.get(position=claire2).datetime.isoformat() == "2026-06-20T18:05:00+00:00"
        assert Checkin.objects.filter(position=claire1).count() == 1
        assert Checkin.objects.filter(position__order__event=linked).count() == 2
        assert CheckinList.objects.filter(event=linked).count() == 1


def test_custom_order_read_as_an_object_or_a_list_of_label_value():
    from pretix_helloasso_bridge.providers.billetweb import BilletwebProvider

    row = {"id": "1", "order_id": "9", "ticket_id": "12693", "price": "10.00", "order_paid": "1", "barcode": "123",
           "used": "3", "used_date": "2026-06-20 19:42:10"}
    shapes = ({"Téléphone": "06", "Vide": ""}, [{"label": "Téléphone", "value": "06"}, {"label": "Vide", "value": ""}])
    for shape in shapes:
        order = BilletwebProvider.map_order(None, "9", [{**row, "custom_order": shape}], "1350001")
        assert [(a.label, a.answer, a.question_id) for a in order.answers] == [("Téléphone", "06", "label:Téléphone")]
        assert order.positions[0].checked_in is None  # "expired" (3) is not a scan
