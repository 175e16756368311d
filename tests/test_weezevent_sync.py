"""Weezevent through the bridge's engine, against the fake Weezevent over HTTP."""
from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from pretix.base.models import CheckinList, Order, OrderPosition, Team

from pretix_helloasso_bridge.models import FormLink, SyncReport
from pretix_helloasso_bridge.sync import run_sync
from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError, ServiceRateLimited

from .helloasso_utils import orders_of, position, sync


@pytest.fixture
def linked(wz_event):
    FormLink.objects.create(event=wz_event, provider="weezevent", form_ref="512345")
    return wz_event


@pytest.mark.django_db
def test_full_import_dates_nested_rates_and_resync_without_duplicates(linked, wz_connected):
    report = sync(linked)
    assert report.orders_created == 5 and not report.skipped, report.skipped
    assert wz_connected.login_attempts == 1
    orders = orders_of(linked)
    with scopes_disabled():
        linked.refresh_from_db()
        assert linked.has_subevents
        subs = {s.date_from.isoformat(): s for s in linked.subevents.all()}
        assert set(subs) == {"2026-07-04T12:00:00+00:00", "2026-07-05T08:00:00+00:00"}
        claire = orders["2029446"]
        assert claire.status == Order.STATUS_PAID and claire.email == "claire.martin@example.org" and claire.total == Decimal("40.50")
        p1, p2 = claire.positions.order_by("positionid")
        assert p1.secret == "7448370" and p2.secret == "7448371"
        assert p1.attendee_name == "Claire Martin" and p2.attendee_name == "Léo Martin"
        assert p1.subevent == subs["2026-07-04T12:00:00+00:00"]
        assert str(p2.item.name) == "Tarifs réduits > Tarif réduit" and p2.price == Decimal("15.50")
        # the buyer's answers (once per order) on the order's first ticket, with the ticket's own answers
        assert {str(a.question.question): a.answer for a in p1.answers.all()} == {"Taille de t-shirt": "M", "Club ou association": "Photo-club de Lyon",
                                                                                  "Téléphone": "0600000000"}
        assert not p2.answers.filter(question__question="Téléphone").exists()
        names = {str(i.name) for i in linked.items.all()}
        assert {"Plein tarif", "Tarifs réduits > Tarif réduit", "Tarifs réduits > Enfants > Enfant (-12 ans)"} <= names
        assert orders["2031177"].status == Order.STATUS_CANCELED  # refunded
        assert orders["2031300"].status == Order.STATUS_CANCELED  # deleted
        hand = orders["2031410"]  # entered by hand, free, no email at all: imported so that it scans
        assert hand.status == Order.STATUS_PAID and not hand.email and hand.positions.get().secret == "7448601"
        assert orders["2031555"].status == Order.STATUS_PENDING
        n = OrderPosition.all.filter(order__event=linked).count()
    assert sync(linked).orders_created == 0
    again = sync(linked, full=True)
    assert again.orders_created == 0 and again.orders_updated == 0 and again.orders_cancelled == 0
    assert wz_connected.login_attempts == 1  # the token is kept
    with scopes_disabled():
        assert OrderPosition.all.filter(order__event=linked).count() == n


@pytest.mark.django_db
def test_incremental_change_refund_and_deletion(linked, wz_connected):
    sync(linked)
    tx, rows = wz_connected.add_transaction(["2001", 2003], date_id=90002)
    wz_connected.mark_paid(2031555)
    report = sync(linked)
    assert report.orders_created == 1 and report.orders_updated == 1
    assert any(r.arg("last_update") for r in wz_connected.received(path=r"^/participant/list$"))
    orders = orders_of(linked)
    with scopes_disabled():
        assert orders[tx].positions.count() == 2 and orders["2031555"].status == Order.STATUS_PAID
        assert {p.subevent.date_from.isoformat() for p in orders[tx].positions.all()} == {"2026-07-05T08:00:00+00:00"}
    wz_connected.refund(rows[0]["id_participant"])
    assert sync(linked).orders_cancelled == 1
    assert position(linked, rows[0]["id_participant"]).canceled
    wz_connected.delete(rows[1]["id_participant"], visible=True)
    sync(linked)
    with scopes_disabled():
        assert Order.objects.get(pk=orders[tx].pk).status == Order.STATUS_CANCELED
    wz_connected.delete(7759646)  # gone from every listing: only the full read sees it
    sync(linked)
    assert not position(linked, 7759646).canceled
    assert sync(linked, full=True).orders_cancelled == 1
    assert position(linked, 7759646).canceled and not position(linked, 7759645).canceled


@pytest.mark.django_db
def test_refused_login_is_never_retried_until_credentials_are_saved_again(linked, wz_connected, organizer, admin_client):
    crypto.set_secret(organizer.settings, "pretix_helloasso_bridge_weezevent_password_secret", "wrong-password")
    for _i in range(3):
        with pytest.raises(ServiceConfigurationError):
            run_sync(linked)
    assert wz_connected.login_attempts == 1  # one refusal, then no attempt at all
    with scopes_disabled():
        report = SyncReport.objects.filter(event=linked).first()
        assert "no new attempt is made" in report.error and "wrong-password" not in report.error
    data = {"pretix_helloasso_bridge_weezevent_api_secret_key": "*****", "pretix_helloasso_bridge_weezevent_username": wz_connected.username,
            "pretix_helloasso_bridge_weezevent_password_secret": wz_connected.password,
            "pretix_helloasso_bridge_weezevent_url": wz_connected.url}
    assert admin_client.post(f"/control/organizer/{organizer.slug}/helloasso/weezevent/", data).status_code == 302
    organizer.settings.flush()
    sync(linked)
    assert wz_connected.login_attempts == 2


@pytest.mark.django_db
def test_expired_token_relogs_once_and_ban_is_reported(linked, wz_connected):
    sync(linked)
    wz_connected.expire_tokens()
    sync(linked)
    assert wz_connected.login_attempts == 2
    wz_connected.rate_limit = 1
    with pytest.raises(ServiceRateLimited):
        run_sync(linked)
    with scopes_disabled():
        assert "more than 600 requests a minute" in SyncReport.objects.filter(event=linked).first().error


@pytest.mark.django_db
def test_sync_killed_midway_is_resumed(linked, wz_connected, monkeypatch):
    from django.apps import apps

    from pretix.base.signals import order_placed

    from pretix_helloasso_bridge.providers import weezevent

    monkeypatch.setattr(weezevent, "PAGE_SIZE", 4)
    monkeypatch.setattr(weezevent, "MAX", 3)  # several API pages too
    wz_connected.add_transactions(6)
    calls = []

    def dying(sender, order, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt()

    setattr(dying, "__mocked_app", apps.get_app_config("pretix_helloasso_bridge"))
    order_placed.connect(dying, dispatch_uid="test_wz_dying")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sync(linked)
    finally:
        order_placed.disconnect(dispatch_uid="test_wz_dying")
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 4
        assert FormLink.objects.get(event=linked).cursor
    report = sync(linked)
    assert report.orders_created == 7
    with scopes_disabled():
        assert Order.objects.filter(event=linked).count() == 11


@pytest.mark.django_db
def test_weezevent_barcode_checks_in_through_pretix_api(linked, organizer, client):
    sync(linked)
    with scopes_disabled():
        cl = CheckinList.objects.create(event=linked, name="Door", all_products=True)
        token = Team.objects.create(organizer=organizer, name="Scan", all_events=True,
                                    limit_event_permissions={"event.orders:checkin": True, "event.orders:read": True}).tokens.create(name="s").token
    r = client.post(f"/api/v1/organizers/{organizer.slug}/checkinrpc/redeem/", {"secret": "7448370", "lists": [cl.pk]},
                    content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "ok" and r.json()["position"]["attendee_name"] == "Claire Martin"
    r = client.post(f"/api/v1/organizers/{organizer.slug}/checkinrpc/redeem/", {"secret": "7448560", "lists": [cl.pk]},
                    content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}")
    assert r.json()["status"] == "error" and r.json()["reason"] == "canceled"  # the deleted participant does not get in


@pytest.mark.django_db
def test_credentials_and_token_never_in_logs(linked, wz_connected, caplog):
    import logging

    from pretix_integrations_core.testing.weezevent import DEMO_API_KEY, DEMO_PASSWORD

    caplog.set_level(logging.DEBUG)
    sync(linked)
    assert wz_connected.tokens
    for secret in (DEMO_API_KEY, DEMO_PASSWORD, *wz_connected.tokens):
        assert secret not in caplog.text


def answers_of(op):
    with scopes_disabled():
        return {str(a.question.question): a.answer for a in op.answers.all()}


@pytest.mark.django_db
def test_buyer_answers_on_the_first_ticket_resync_and_change(linked, wz_connected, admin_client):
    from pretix.base.models import Question, QuestionAnswer

    sync(linked)
    tx, rows = wz_connected.add_transaction(["2001", 2003], answers=[("Taille de t-shirt", "L")],
                                            buyer_answers=[("Téléphone", "0611223344"), ("Société", "Atelier Martin"), ("Vide", "")])
    assert sync(linked).orders_created == 1
    first, second = position(linked, rows[0]["id_participant"]), position(linked, rows[1]["id_participant"])
    # "Téléphone" is a label already met (sample buyer): the same question, not a second one
    assert answers_of(first) == {"Taille de t-shirt": "L", "Téléphone": "0611223344", "Société": "Atelier Martin"}
    assert answers_of(second) == {"Taille de t-shirt": "L"}
    with scopes_disabled():
        order = orders_of(linked)[tx]
        assert Question.objects.filter(event=linked, question="Téléphone").count() == 1
        questions = Question.objects.filter(event=linked).count()
        n_answers = QuestionAnswer.objects.filter(orderposition__order__event=linked).count()
    page = admin_client.get(f"/control/event/{linked.organizer.slug}/{linked.slug}/orders/{order.code}/")
    assert page.status_code == 200 and "0611223344" in page.content.decode() and "Atelier Martin" in page.content.decode()
    for kw in ({}, {"full": True}):
        report = sync(linked, **kw)
        assert report.orders_created == 0 and report.orders_updated == 0
    with scopes_disabled():
        assert Question.objects.filter(event=linked).count() == questions
        assert QuestionAnswer.objects.filter(orderposition__order__event=linked).count() == n_answers
    wz_connected.set_buyer_answers(tx, [("Téléphone", "0699887766"), ("Société", "Atelier Martin")])
    assert sync(linked).orders_updated == 1
    assert answers_of(first) == {"Taille de t-shirt": "L", "Téléphone": "0699887766", "Société": "Atelier Martin"}
    with scopes_disabled():
        assert QuestionAnswer.objects.filter(orderposition__order__event=linked).count() == n_answers
        assert order.all_logentries().filter(action_type="pretix.event.order.modified").count() == 1
    # the first ticket cancelled: the buyer's answers follow to the order's first valid ticket
    wz_connected.refund(rows[0]["id_participant"])
    sync(linked)
    assert answers_of(second) == {"Taille de t-shirt": "L", "Téléphone": "0699887766", "Société": "Atelier Martin"}
    assert sync(linked, full=True).orders_updated == 0


@pytest.mark.django_db
def test_platform_scans_become_checkins_once(linked, wz_connected):
    from pretix.base.models import Checkin

    sync(linked)
    claire1, claire2 = position(linked, 7759645), position(linked, 7759646)
    with scopes_disabled():
        ci = Checkin.objects.get(position=claire1)  # control_status 1 at 14:05:12 in Paris
        assert ci.type == Checkin.TYPE_ENTRY and ci.datetime.isoformat() == "2026-07-04T12:05:12+00:00"
        assert Checkin.objects.filter(position__order__event=linked).count() == 1
    wz_connected.scan(7759646, "2026-07-04 14:30:00")
    assert sync(linked).orders_updated == 1
    for kw in ({}, {"full": True}):
        assert sync(linked, **kw).orders_updated == 0
    with scopes_disabled():
        assert Checkin.objects.get(position=claire2).datetime.isoformat() == "2026-07-04T12:30:00+00:00"
        assert Checkin.objects.filter(position=claire1).count() == 1
        assert Checkin.objects.filter(position__order__event=linked).count() == 2
        assert CheckinList.objects.filter(event=linked).count() == 1
