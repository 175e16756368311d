"""The sync engine against the fake HelloAsso over HTTP: full import, re-sync, refunds, chargebacks, quotas, interruptions."""
import copy
import json
from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import CheckinList, LogEntry, Order, Quota, Team

from pretix_helloasso_bridge.models import FormLink, RemoteObject, SyncReport
from pretix_helloasso_bridge.sync import run_sync
from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceUnavailable
from pretix_integrations_core.testing.fakeserver import Response, route
from pretix_integrations_core.testing.helloasso import FakeHelloAsso, _now as ha_now

FORM = "Event/soiree-de-gala-2026"
PAYER = {"email": "p@example.org", "firstName": "Paul", "lastName": "Durand", "country": "AUT", "city": "Wien"}


@pytest.fixture
def linked(ha_event):
    FormLink.objects.create(event=ha_event, form_ref=FORM)
    return ha_event


def orders_of(event):
    with scopes_disabled():
        return {ro.remote_id: ro.order for ro in RemoteObject.objects.filter(event=event, kind="order").select_related("order")}


def sync(event, **kw):
    report = run_sync(event, **kw)
    assert report.state == SyncReport.SUCCESS, report.error
    return report


@pytest.mark.django_db
def test_full_import_then_resync_without_duplicates(linked, ha_connected):
    report = sync(linked)
    assert (report.orders_created, report.orders_cancelled, report.orders_refunded, report.skipped) == (3, 1, 1, []), report.skipped
    with scopes_disabled():
        orders = orders_of(linked)
        a = orders["128450311"]
        assert a.status == Order.STATUS_PAID and a.total == Decimal("52.00") and a.email == "claire.martin@example.org"
        assert a.sales_channel.identifier == "helloasso"
        pos = list(a.positions.order_by("positionid"))
        assert [(str(p.item.name), p.price) for p in pos] == [
            ("Entrée plein tarif", Decimal("25.00")), ("Repas du soir", Decimal("12.00")), ("Entrée tarif réduit", Decimal("15.00"))]
        assert pos[1].addon_to == pos[0]
        assert pos[0].attendee_name == "Claire Martin"
        answers = {str(an.question.question): an.answer for an in pos[0].answers.all()}
        assert answers == {"Taille de t-shirt": "M", "Club ou association": "Les Balles Folles"}
        assert a.invoice_address.country == "FR" and a.invoice_address.city == "Lyon"
        assert a.datetime.isoformat().startswith("2026-04-03T18:14:52")
        [pay] = a.payments.all()
        assert pay.provider == "helloasso" and pay.amount == Decimal("52.00") and pay.state == "confirmed"
        assert all(not it.all_sales_channels for it in linked.items.all())
        b = orders["128450377"]
        assert b.status == Order.STATUS_CANCELED and b.refunds.get().amount == Decimal("15.00")
        c = orders["128451002"]
        assert c.status == Order.STATUS_PAID and c.positions.count() == 1 and c.total == 0
    assert report.api_calls <= 5  # token, form, orders page, empty page
    again = sync(linked)
    assert again.orders_created == 0 and again.api_calls <= 3  # form, one orders page, payments by update date
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 3
        assert linked.items.count() == 4  # 3 rates and 1 option, no duplicate
    # the payment provider is never offered in the shop
    provider = linked.get_payment_providers()["helloasso"]
    assert provider.is_allowed(None) is False and provider.order_change_allowed(None) is False


@pytest.mark.django_db
def test_later_refund_partial_refund_and_chargeback(linked, ha_connected):
    sync(linked)
    new = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Paul", "Durand")}, {"tier": 14587202, "user": ("Zoé", "Durand")}])
    sync(linked)
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        assert order.status == Order.STATUS_PAID and order.invoice_address.country == "AT"  # AUT is Austria, not Australia
    pid = new["payments"][0]["id"]
    ha_connected.refund_payment(pid, 1000)  # partial refund: recorded, nothing cancelled
    report = sync(linked)
    assert report.orders_refunded == 1 and report.orders_cancelled == 0
    with scopes_disabled():
        order.refresh_from_db()
        assert order.status == Order.STATUS_PAID and order.positions.count() == 2
        assert [r.amount for r in order.refunds.all()] == [Decimal("10.00")]
    ha_connected.refund_payment(pid, 3000)  # the rest: the payment is refunded, the order cancelled
    report = sync(linked)
    with scopes_disabled():
        order.refresh_from_db()
        assert order.status == Order.STATUS_CANCELED and sorted(r.amount for r in order.refunds.all()) == [Decimal("10.00"), Decimal("30.00")]
    assert report.orders_cancelled == 1
    # a chargeback on order A is flagged, never cancelled silently
    ha_connected.orders[128450311]["payments"][0]["state"] = "Contested"
    ha_connected.orders[128450311]["payments"][0]["meta"]["updatedAt"] = ha_now()
    report = sync(linked)
    with scopes_disabled():
        a = orders_of(linked)["128450311"]
        assert a.status == Order.STATUS_PAID and a.checkin_attention
        assert LogEntry.objects.filter(action_type="pretix_helloasso_bridge.order.contested", object_id=a.pk).count() == 1
    assert any("contested" in w for w in report.warnings)
    assert not any("contested" in w for w in sync(linked).warnings)  # flagged once


@pytest.mark.django_db
def test_cancelled_item_cancels_its_position(linked, ha_connected):
    new = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Paul", "Durand"), "options": [3051871]},
                                         {"tier": 14587203, "user": ("Lou", "Durand")}])
    sync(linked)
    ha_connected.cancel_item(new["items"][0]["id"])
    sync(linked, full=True)
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        assert order.status == Order.STATUS_PAID
        assert [str(p.item.name) for p in order.positions.all()] == ["Entrée enfant (-12 ans)"]  # the add-on went with its parent


@pytest.mark.django_db
def test_installments_promo_code_and_quota_never_refused(linked, ha_connected):
    with scopes_disabled():
        sync(linked)
        q = Quota.objects.create(event=linked, name="Salle", size=2)
        q.items.add(*linked.items.all())
    new = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Paul", "Durand")}, {"tier": 14587201, "user": ("Eva", "Durand")}])
    stored = ha_connected.orders[new["id"]]
    first = stored["payments"][0]
    first["amount"] = 2500
    second = copy.deepcopy(first)
    second.update(id=first["id"] + 1, state="Pending", installmentNumber=2, date="2026-06-01T00:00:00+02:00")
    stored["payments"].append(second)
    stored["items"][0]["discount"] = {"code": "AMIS2026", "amount": 500}
    report = sync(linked)
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        assert order.status == Order.STATUS_PENDING and order.payments.get().amount == Decimal("25.00")
        assert order.positions.count() == 2  # imported although the quota is full: never refused
        assert "AMIS2026" in order.comment and order.api_meta["helloasso_promo_codes"] == ["AMIS2026"]
    assert any("Quota “Salle” is exceeded" in w for w in report.warnings)
    second["state"] = "Authorized"
    second["meta"]["updatedAt"] = ha_now()
    sync(linked)
    with scopes_disabled():
        order.refresh_from_db()
        assert order.status == Order.STATUS_PAID and order.payments.count() == 2


@pytest.mark.django_db
def test_token_expiry_mid_sync_and_retries_on_429_and_5xx(linked, ha_connected):
    sync(linked)
    ha_connected.add_order(PAYER, [{"tier": 14587202, "user": ("Paul", "Durand")}])
    ha_connected.expire_access_tokens()
    ha_connected.fail_next(status=429, headers={"Retry-After": "0"}, path=r"/public$")
    ha_connected.fail_next(status=503, path=r"/orders$")
    report = sync(linked)
    assert report.orders_created == 1
    grants = [r.form.get("grant_type") for r in ha_connected.received("POST", r"^/oauth2/token$")]
    assert grants == ["client_credentials", "refresh_token"]


class FlakyHelloAsso(FakeHelloAsso):
    """Answers 503 to every next-page request while ``broken`` is set (a network cut in the middle of a sync)."""
    broken = False

    @route("GET", r"/v5/organizations/(?P<org>[^/]+)/forms/(?P<ftype>[^/]+)/(?P<fslug>[^/]+)/(?P<what>orders|items|payments)")
    def form_lists(self, req):
        if self.broken and req.arg("continuationToken"):
            return Response(503, b"", {})
        return super().form_lists(req)


@pytest.mark.django_db
def test_sync_cut_at_a_page_boundary_resumes_without_duplicates_and_repeated_failure_notifies(linked, organizer):
    with FlakyHelloAsso() as server:
        organizer.settings.set("pretix_helloasso_bridge_base_url", server.url)
        for i in range(100):
            server.add_order({**PAYER, "email": f"p{i}@example.org"}, [{"tier": 14587202, "user": ("P", str(i))}])
        server.broken = True
        for _ in range(3):
            with pytest.raises(ServiceUnavailable):
                run_sync(linked)
        with scopes_disabled():
            assert all(r.state == SyncReport.FAILED and "unavailable" in r.error for r in SyncReport.objects.filter(event=linked))
        with scopes_disabled():
            assert Order.objects.filter(event=linked).count() == 100  # the first page, committed once
            link = FormLink.objects.get(event=linked)
            assert link.cursor and link.status == FormLink.ERROR and link.last_error
            assert LogEntry.objects.filter(action_type="pretix_helloasso_bridge.sync.failed").count() == 1
        server.broken = False
        report = sync(linked)
        assert report.orders_created == 3
        with scopes_disabled():
            assert Order.objects.filter(event=linked).count() == 103
            link.refresh_from_db()
            assert not link.cursor and link.status == FormLink.ACTIVE and link.consecutive_failures == 0


@pytest.mark.django_db
def test_wrong_credentials_fail_the_sync_clearly(linked, organizer, ha_connected):
    crypto.set_secret(organizer.settings, "pretix_helloasso_bridge_client_secret", "wrong")
    with pytest.raises(Exception):
        run_sync(linked)
    with scopes_disabled():
        report = SyncReport.objects.get(event=linked)
        assert report.state == SyncReport.FAILED and "refused the client id or client secret" in report.error


@pytest.mark.django_db
def test_helloasso_ticket_code_checks_in_through_pretix_api(linked, organizer, ha_connected, client):
    sync(linked)
    code = ha_connected.orders[128450311]["items"][0]["qrCode"]
    with scopes_disabled():
        cl = CheckinList.objects.create(event=linked, name="Door", all_products=True)
        token = Team.objects.create(organizer=organizer, name="Scan", all_events=True,
                                    limit_event_permissions={"event.orders:checkin": True, "event.orders:read": True}).tokens.create(name="s").token
    r = client.post(f"/api/v1/organizers/{organizer.slug}/checkinrpc/redeem/", {"secret": code, "lists": [cl.pk]},
                    content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "ok" and r.json()["position"]["attendee_name"] == "Claire Martin"


@pytest.mark.django_db
def test_donations_items_without_rate_id_and_unmatched_items(linked, ha_connected):
    sync(linked)
    new = ha_connected.add_order(PAYER, [{"tier": 14587202, "user": ("Paul", "Durand")}, {"tier": 14587201, "user": ("Ana", "Durand")}])
    items = ha_connected.orders[new["id"]]["items"]
    items[0].pop("tierId")  # old data: matched by label
    items[1].update(type="Donation", amount=700)  # a donation line: a Donation product at the donated amount
    items[1].pop("tierId")
    items[1]["name"] = "Don libre"
    odd = ha_connected.add_order({**PAYER, "email": "odd@example.org"}, [{"tier": 14587202, "user": ("X", "Y")}])
    ha_connected.orders[odd["id"]]["items"][0].update(name="Tarif inconnu")
    ha_connected.orders[odd["id"]]["items"][0].pop("tierId")
    report = sync(linked)
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        assert sorted((str(p.item.name), p.price) for p in order.positions.all()) == [("Donation", Decimal("7.00")),
                                                                                      ("Entrée tarif réduit", Decimal("15.00"))]
    assert report.skipped == [{"remote_id": str(odd["id"]), "reason": "item “Tarif inconnu” matches no product"}]


@pytest.mark.django_db
def test_organiser_changes_are_kept_and_reported(linked, ha_connected):
    sync(linked)
    with scopes_disabled():
        item = RemoteObject.objects.get(event=linked, kind="product", remote_id="14587201").item
        item.name = "Plein tarif (pretix)"
        item.save()
    tiers = ha_connected.forms[("Event", "soiree-de-gala-2026")]["tiers"]
    tiers[0]["label"] = "Plein tarif 2026"
    tiers[1]["label"] = "Réduit 2026"
    report = sync(linked)
    with scopes_disabled():
        item.refresh_from_db()
        assert str(item.name) == "Plein tarif (pretix)"  # the organiser's name is kept...
        assert str(RemoteObject.objects.get(event=linked, kind="product", remote_id="14587202").item.name) == "Réduit 2026"
    assert any("Plein tarif (pretix)" in w and "name" in w for w in report.warnings)  # ...and the difference reported


@pytest.mark.django_db
def test_no_pretix_email_unless_enabled(linked, ha_connected, mailoutbox):
    sync(linked)
    assert mailoutbox == []
    with scopes_disabled():
        FormLink.objects.filter(event=linked).update(send_emails=True)
    ha_connected.add_order(PAYER, [{"tier": 14587202, "user": ("Paul", "Durand")}])
    sync(linked)
    assert [m.to for m in mailoutbox] == [["p@example.org"]]


@pytest.mark.django_db
def test_one_sync_per_event_at_a_time(linked, ha_connected, admin_client, django_capture_on_commit_callbacks):
    from django.utils.timezone import now

    from pretix_helloasso_bridge.sync import SyncAlreadyRunning

    with scopes_disabled():
        FormLink.objects.filter(event=linked).update(running_since=now(), progress="12 orders read")
    with pytest.raises(SyncAlreadyRunning):
        run_sync(linked)
    page = admin_client.get(f"/control/event/{linked.organizer.slug}/{linked.slug}/helloasso/").content.decode()
    assert "Sync running:" in page and "12 orders read" in page and 'http-equiv="refresh"' in page
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post(f"/control/event/{linked.organizer.slug}/{linked.slug}/helloasso/sync/", follow=True)
    assert "A sync is already running." in r.content.decode()
    assert not ha_connected.received("GET", r"/orders$")


@pytest.mark.django_db
def test_sync_killed_in_the_middle_of_a_page_is_resumed_without_loss_or_duplicate(linked, ha_connected, monkeypatch):
    from django.apps import apps

    from pretix.base.signals import order_placed

    for i in range(10):
        ha_connected.add_order({**PAYER, "email": f"k{i}@example.org"}, [{"tier": 14587202, "user": ("K", str(i))}])
    calls = []

    def dying(sender, order, **kwargs):  # the worker is killed while importing the 6th order of the page
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt()

    setattr(dying, "__mocked_app", apps.get_app_config("pretix_helloasso_bridge"))  # pretix's own way to attribute a test receiver
    order_placed.connect(dying, dispatch_uid="test_helloasso_dying")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(linked)
    finally:
        order_placed.disconnect(dispatch_uid="test_helloasso_dying")
    assert len(calls) == 6
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 0  # the page's transaction was rolled back as a whole
        assert not FormLink.objects.get(event=linked).cursor
    report = sync(linked)
    assert report.orders_created == 13
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 13
        assert SyncReport.objects.filter(event=linked, state=SyncReport.FAILED, error__startswith="Interrupted").count() == 1


@pytest.mark.django_db
def test_custom_field_types_map_to_question_types(linked, ha_connected):
    form = ha_connected.forms[("Event", "soiree-de-gala-2026")]
    extra = [{"id": 5501240, "label": "Majeur ?", "type": "YesNo", "isRequired": False, "values": []},
             {"id": 5501241, "label": "Date de naissance", "type": "Date", "isRequired": False, "values": []},
             {"id": 5501242, "label": "Téléphone", "type": "Phone", "isRequired": False, "values": []},
             {"id": 5501243, "label": "Justificatif", "type": "File", "isRequired": False, "values": []}]
    form["tiers"][1]["customFields"] += extra
    new = ha_connected.add_order(PAYER, [{"tier": 14587202, "user": ("Paul", "Durand"),
                                          "answers": {5501240: "Oui", 5501241: "23/09/1987", 5501243: "https://example.org/f.pdf"}}])
    sync(linked)
    with scopes_disabled():
        types = {ro.remote_id: ro.question.type for ro in RemoteObject.objects.filter(event=linked, kind="question")}
        assert types == {"5501231": "C", "5501232": "S", "5501240": "B", "5501241": "D", "5501242": "TEL", "5501243": "S"}
        pos = orders_of(linked)[str(new["id"])].positions.get()
        answers = {str(a.question.question): a.answer for a in pos.answers.all()}
        assert answers == {"Majeur ?": "True", "Date de naissance": "1987-09-23", "Justificatif": "https://example.org/f.pdf"}


@pytest.mark.django_db
def test_notification_type_is_subscribable(linked):
    from pretix.base.notifications import get_all_notification_types

    assert "pretix_helloasso_bridge.sync.failed" in get_all_notification_types(linked)


@pytest.mark.django_db
def test_tips_to_helloasso_are_never_imported(linked, ha_connected):
    new = ha_connected.add_order(PAYER, [{"tier": 14587202, "user": ("Paul", "Durand")}])
    ha_connected.orders[new["id"]]["payments"][0]["amountTip"] = 300
    sync(linked)
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        assert order.total == Decimal("15.00") and [p.amount for p in order.payments.all()] == [Decimal("15.00")]


@pytest.mark.django_db
def test_pay_what_you_want_rate_and_vat(linked, ha_connected):
    tiers = ha_connected.forms[("Event", "soiree-de-gala-2026")]["tiers"]
    tiers.append({**copy.deepcopy(tiers[2]), "id": 14587299, "label": "Prix libre", "price": 0, "minAmount": 500, "vatRate": 0.055})
    sync(linked)
    with scopes_disabled():
        item = RemoteObject.objects.get(event=linked, kind="product", remote_id="14587299").item
        assert item.free_price and item.default_price == Decimal("5.00") and item.tax_rule.rate == Decimal("5.50")
        assert not item.all_sales_channels and [c.identifier for c in item.limit_sales_channels.all()] == ["helloasso"]


@pytest.mark.django_db
def test_imported_orders_reach_the_organisers_webhooks(linked, ha_connected, django_capture_on_commit_callbacks):
    """New orders are bulk-inserted: their log entries still go to pretix's webhooks when the organiser has one."""
    from pretix.api.models import WebHook, WebHookCall

    with scopes_disabled():
        wh = WebHook.objects.create(organizer=linked.organizer, target_url=ha_connected.url + "/pretix-webhook", all_events=True)
        wh.listeners.create(action_type="pretix.event.order.placed")
    with django_capture_on_commit_callbacks(execute=True):
        report = sync(linked)
    assert report.orders_created == 3
    with scopes_disabled():
        payloads = [json.loads(c.payload) for c in WebHookCall.objects.filter(webhook=wh)]  # the fake answers 404: pretix retries
        assert {p["action"] for p in payloads} == {"pretix.event.order.placed"}
        assert {p["code"] for p in payloads} == {o.code for o in orders_of(linked).values()}
    assert ha_connected.received("POST", "/pretix-webhook")


@pytest.mark.django_db
def test_new_orders_are_imported_in_bulk(linked, ha_connected, django_assert_max_num_queries):
    """A page of new orders costs a bounded number of queries, not dozens per order (the bench measures the speed).

    What is left per order is mostly pretix's own order_placed / order_paid receivers (a savepoint each), as for its CSV import."""
    for i in range(40):
        ha_connected.add_order({**PAYER, "email": f"b{i}@example.org"},
                               [{"tier": 14587201, "user": ("B", str(i)), "answers": {5501231: "M"}},
                                {"tier": 14587202, "user": ("C", str(i))}])
    with django_assert_max_num_queries(800):
        report = sync(linked)
    assert report.orders_created == 43 and not report.skipped
    with scopes_disabled():
        order = orders_of(linked)[str(max(ha_connected.orders))]
        assert order.status == Order.STATUS_PAID and order.positions.count() == 2
        assert {str(a.question.question): a.answer for p in order.positions.all() for a in p.answers.all()}.get("Taille") in (None, "M")


@pytest.mark.django_db
def test_sync_with_nothing_new_is_cheap_and_changes_nothing(linked, ha_connected, django_assert_max_num_queries):
    """More than a page of orders inside the safety overlap: a sync with nothing new still makes at most 3 API calls
    (the form, one page of items and one of payments by update date) and re-reads no order; changes are still caught."""
    added = [ha_connected.add_order({**PAYER, "email": f"b{i}@example.org"}, [{"tier": 14587201, "user": ("Paul", "Durand")}])
             for i in range(140)]
    first = sync(linked, full=True)
    assert first.orders_created == 143  # 140 new and the fake's 3
    with scopes_disabled():
        state = lambda: [(o.code, o.status, o.total, o.payments.count(), o.refunds.count())  # noqa: E731
                         for o in Order.objects.filter(event=linked).order_by("code")]
        before, logs = state(), LogEntry.objects.filter(event=linked).count()
    for _ in range(2):
        ha_connected.reset()
        with django_assert_max_num_queries(60):
            again = sync(linked)
        assert (again.orders_created, again.orders_updated, again.orders_cancelled, again.orders_refunded, again.skipped) == (0, 0, 0, 0, [])
        calls = [(r.method, r.path) for r in ha_connected.received()]
        assert again.api_calls <= 3 and len(calls) <= 3, calls
        assert not ha_connected.received("GET", r"/orders$")  # nothing re-read
        with scopes_disabled():
            assert state() == before and LogEntry.objects.filter(event=linked).count() == logs
    # changes inside the overlap are still applied: a refund, a new order, a late order dated before the newest one
    ha_connected.refund_payment(added[5]["payments"][0]["id"], 1000)
    new = ha_connected.add_order({**PAYER, "email": "new@example.org"}, [{"tier": 14587202, "user": ("N", "Ew")}])
    late = ha_connected.add_order({**PAYER, "email": "late@example.org"}, [{"tier": 14587202, "user": ("L", "Ate")}],
                                  date=added[3]["date"])
    report = sync(linked)
    assert (report.orders_refunded, report.orders_updated, report.orders_created) == (1, 1, 2)
    with scopes_disabled():
        assert [r.amount for r in orders_of(linked)[str(added[5]["id"])].refunds.all()] == [Decimal("10.00")]
        assert {str(new["id"]), str(late["id"])} <= set(orders_of(linked))
    ha_connected.reset()
    assert sync(linked).api_calls <= 3
    # a late order dated long before the window is fetched alone, not by re-reading every order since its date
    older = ha_connected.add_order({**PAYER, "email": "older@example.org"}, [{"tier": 14587202, "user": ("O", "Ld")}], date=OLD)
    ha_connected.reset()
    report = sync(linked)
    assert report.orders_created == 1 and report.api_calls <= 4 and not ha_connected.received("GET", r"/orders$")
    with scopes_disabled():
        assert str(older["id"]) in orders_of(linked)


OLD = "2026-03-01T10:00:00.1234567+01:00"


def move_into(fake, order_id, extra):
    """HelloAsso shows ``extra``'s items and payments as added later to the order ``order_id``."""
    stored, moved = fake.orders[order_id], fake.orders.pop(extra["id"])
    stored["items"] += moved["items"]
    stored["payments"] += moved["payments"]
    stored["meta"]["updatedAt"] = ha_now()


@pytest.mark.django_db
def test_items_added_later_become_new_positions_once(linked, ha_connected):
    new = ha_connected.add_order(PAYER, [{"tier": 14587202, "user": ("Paul", "Durand")}], date=OLD)  # older than the overlap
    sync(linked)
    extra = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Eva", "Durand"), "answers": {5501231: "L"}, "options": [3051871]}])
    move_into(ha_connected, new["id"], extra)
    report = sync(linked)  # incremental: found through the items listed by update date
    assert (report.orders_created, report.orders_updated, report.skipped) == (0, 1, [])
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        assert order.status == Order.STATUS_PAID and order.total == Decimal("52.00")
        pos = {str(p.item.name): p for p in order.positions.all()}
        assert set(pos) == {"Entrée tarif réduit", "Entrée plein tarif", "Repas du soir"}
        added = pos["Entrée plein tarif"]
        assert pos["Repas du soir"].addon_to == added and added.attendee_name == "Eva Durand"
        assert added.secret == extra["items"][0]["qrCode"]
        assert {str(a.question.question): a.answer for a in added.answers.all()} == {"Taille de t-shirt": "L"}
        assert sorted(p.amount for p in order.payments.all()) == [Decimal("15.00"), Decimal("37.00")]
        assert order.expires > order.datetime  # never expires because of the change
        assert LogEntry.objects.filter(action_type="pretix.event.order.changed.add", object_id=order.pk).count() == 2
    ha_connected.orders[new["id"]]["meta"]["updatedAt"] = ha_now()
    sync(linked)
    sync(linked, full=True)
    with scopes_disabled():
        assert order.positions.count() == 3  # keyed on the item id: never added twice


@pytest.mark.django_db
def test_cancelled_item_of_a_free_order_is_caught_by_the_incremental_sync(linked, ha_connected):
    free = ha_connected.add_order(PAYER, [{"tier": 14587203, "user": ("Lou", "Durand")}, {"tier": 14587203, "user": ("Léo", "Durand")}],
                                  date=OLD)  # older than the overlap: only the update date says it changed
    sync(linked)
    with scopes_disabled():
        order = orders_of(linked)[str(free["id"])]
        assert order.status == Order.STATUS_PAID and order.positions.count() == 2 and not order.payments.exclude(provider="free").exists()
    ha_connected.cancel_item(free["items"][1]["id"])  # a free order has no payment: only its items say so
    report = sync(linked)
    assert report.orders_cancelled == 1
    with scopes_disabled():
        assert [p.attendee_name for p in order.positions.all()] == ["Lou Durand"]
    ha_connected.cancel_item(free["items"][0]["id"])
    sync(linked)
    with scopes_disabled():
        order.refresh_from_db()
        assert order.status == Order.STATUS_CANCELED


@pytest.mark.django_db
def test_promo_code_and_discount_on_the_order_page_and_in_the_api(linked, ha_connected, admin_client, organizer):
    new = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Paul", "Durand"), "discount": {"code": "AMIS2026", "amount": 500}},
                                         {"tier": 14587202, "user": ("Eva", "Durand")}], date=OLD)
    sync(linked)
    with scopes_disabled():
        order = orders_of(linked)[str(new["id"])]
        token = Team.objects.create(organizer=organizer, name="R", all_events=True,
                                    limit_event_permissions={"event.orders:read": True}).tokens.create(name="r").token
    page = admin_client.get(f"/control/event/{organizer.slug}/{linked.slug}/orders/{order.code}/").content.decode()
    assert "HelloAsso order" in page and str(new["id"]) in page
    assert '<dd class="helloasso-promo-codes">AMIS2026</dd>' in page and "€5.00" in page
    r = admin_client.get(f"/api/v1/organizers/{organizer.slug}/events/{linked.slug}/orders/{order.code}/", HTTP_AUTHORIZATION=f"Token {token}")
    # neutral keys for every platform, and the historical helloasso_* keys that API consumers of HelloAsso orders read
    assert r.json()["api_meta"] == {"platform": "helloasso", "platform_order_id": str(new["id"]), "promo_codes": ["AMIS2026"], "discount": "5.00",
                                    "helloasso_order_id": str(new["id"]), "helloasso_promo_codes": ["AMIS2026"], "helloasso_discount": "5.00"}
    # a ticket added later with another code
    extra = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Zoé", "Durand"), "discount": {"code": "ZOE", "amount": 1000}}])
    move_into(ha_connected, new["id"], extra)
    sync(linked)
    with scopes_disabled():
        order.refresh_from_db()
        assert order.api_meta["helloasso_promo_codes"] == ["AMIS2026", "ZOE"] and order.api_meta["helloasso_discount"] == "15.00"
        assert order.api_meta["promo_codes"] == ["AMIS2026", "ZOE"] and order.api_meta["discount"] == "15.00"
    page = admin_client.get(f"/control/event/{organizer.slug}/{linked.slug}/orders/{order.code}/").content.decode()
    assert '<dd class="helloasso-promo-codes">AMIS2026, ZOE</dd>' in page


@pytest.mark.django_db
def test_changes_behind_a_page_of_orders_imported_by_webhooks_are_caught(linked, ha_connected):
    """The early stop trusts only what a scan read: a refund without a notification, followed by more than a page of
    orders that webhooks imported (their changes are applied but newer than the last scan), is still found."""
    from pretix_helloasso_bridge.tasks import import_order

    sync(linked)
    ha_connected.refund_payment(104771203)  # order A; its notification never arrives
    for i in range(101):
        o = ha_connected.add_order({**PAYER, "email": f"w{i}@example.org"}, [{"tier": 14587202, "user": ("W", str(i))}])
        import_order.apply(kwargs={"event": linked.pk, "remote_id": str(o["id"])})
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 104
    report = sync(linked)
    assert report.orders_cancelled == 1 and report.orders_created == 0
    with scopes_disabled():
        assert orders_of(linked)["128450311"].status == Order.STATUS_CANCELED
