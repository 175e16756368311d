"""
CRM bridge ← Invoice Ninja and Mautic: webhooks through their doors (the organiser's secret URLs), the payment re-fetched
from the fake Invoice Ninja over HTTP, pretix's real payment confirmation; consent withdrawal through pretix's data
shredder; cancellations reaching Invoice Ninja.
"""
import io
import json
import time
from datetime import timedelta
from decimal import Decimal
from zipfile import ZipFile

import pytest
import requests
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.models import CachedFile, Event, LogEntry, Order, Organizer, Team, User
from pretix.base.signals import order_placed

from pretix_crm_bridge import config
from pretix_crm_bridge.payment import IDENTIFIER as NINJA_PROVIDER
from pretix_crm_bridge.sync import InvoiceNinjaSync, MauticSync, has_consent
from pretix_crm_bridge.webhook_secrets import ensure_path_secret
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.invoiceninja import DEMO_API_TOKEN

from .crm_utils import connect_mautic, connect_ninja, make_order, pay, queue_rows, results, run_queue

NINJA = InvoiceNinjaSync.identifier
CONN = "/control/organizer/demo/crm/"


def log_actions(obj):
    with scopes_disabled():
        entries = obj.all_logentries() if isinstance(obj, Order) else obj.all_logentries()
        return [(e.action_type, e.parsed_data) for e in entries.order_by("pk")]


def consent(order):
    """The consent as stored now (Order.meta_info_data is cached on an instance)."""
    with scopes_disabled():
        return has_consent(Order.objects.get(pk=order.pk))


def organizer_log(organizer, action_type):
    with scopes_disabled():
        return [e.parsed_data for e in LogEntry.objects.filter(organizer_id=organizer.pk, action_type=action_type).order_by("pk")]


# -- Invoice Ninja payments ------------------------------------------------------------------------

@pytest.fixture
def ninja_event(crm_event):
    crm_event.settings.set(config.MAUTIC_ENABLED, False)
    crm_event.settings.set(config.NINJA_INVOICE_PENDING, True)
    return crm_event


def ninja_api(fake, method, path, **kwargs):
    """What the organiser does in Invoice Ninja (its UI uses the same API)."""
    r = requests.request(method, fake.url + path, headers={"X-API-TOKEN": DEMO_API_TOKEN, "X-Requested-With": "XMLHttpRequest"},
                         timeout=5, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def placed_order(event, item, django_capture_on_commit_callbacks, **kwargs):
    """An order placed (pretix's signal), whose client and unpaid invoice the queue sent to Invoice Ninja."""
    order = make_order(event, item, **kwargs)
    with scope(organizer=event.organizer):
        order_placed.send(event, order=order)
    run_queue(django_capture_on_commit_callbacks)
    return order


def ninja_invoice(fake, number):
    return next(i for i in fake.store["invoices"].values() if i["number"] == number)


def record_bank_transfer(fake, invoice, amount, **extra):
    """The organiser reconciles a bank transfer in Invoice Ninja: a payment on the invoice."""
    return ninja_api(fake, "POST", "/api/v1/payments", json={
        "client_id": invoice["client_id"], "amount": amount, "date": "2026-08-02", "type_id": "1",
        "transaction_reference": "VIR SEPA 20260802 DUPONT", "invoices": [{"invoice_id": invoice["id"], "amount": amount}], **extra})


def hook(organizer):
    with scopes_disabled():
        return f"/_crm/invoiceninja/{organizer.slug}/{ensure_path_secret(organizer, 'invoiceninja')}/"


def deliver(client, url, fake, payment_id, django_capture_on_commit_callbacks, mutate=None):
    """Invoice Ninja's webhook: the bare payment entity, unsigned."""
    payload = fake.entity_payload("payments", payment_id)
    if mutate:
        mutate(payload)
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(url, json.dumps(payload), content_type="application/json")


@pytest.mark.django_db
def test_ninja_payment_marks_the_pending_order_paid(client, admin_client, ninja_event, item, organizer, fake_invoiceninja,
                                                    django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    assert invoice["balance"] == 16.0 and invoice["po_number"] == order.code  # the unpaid invoice is there before the money
    payment = record_bank_transfer(fake_invoiceninja, invoice, 16.0)

    def forge(payload):  # the payload is never trusted: the payment is re-fetched
        payload["amount"] = 1.0
        payload["paymentables"][0]["amount"] = 1.0
    r = deliver(client, hook(organizer), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks, forge)
    assert r.status_code == 202
    assert fake_invoiceninja.received("GET", rf"^/api/v1/payments/{payment['id']}$")
    order.refresh_from_db()
    assert order.status == Order.STATUS_PAID
    with scopes_disabled():
        [p] = order.payments.all()
    assert p.provider == NINJA_PROVIDER and p.amount == Decimal("16.00") and p.info_data["invoiceninja_payment_id"] == payment["id"]
    actions = [a for a, _d in log_actions(order)]
    assert "pretix.event.order.paid" in actions and "pretix_crm_bridge.invoiceninja.payment.accepted" in actions
    page = admin_client.get(f"/control/event/demo/concert/orders/{order.code}/").content.decode()
    assert "Payment reconciled in Invoice Ninja" in page and "VIR SEPA 20260802 DUPONT" in page

    # the paid order goes through the queue: the same invoice, and the payment is not recorded back (no loop)
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, NINJA) == []
    assert len(fake_invoiceninja.store["payments"]) == 1 and len(fake_invoiceninja.store["invoices"]) == 1
    assert results(order, NINJA)[2].sync_info["number"] == order.full_code


@pytest.mark.django_db
def test_ninja_payment_pretix_invoice_number_keeps_its_number_when_paid(client, ninja_event, item, organizer, fake_invoiceninja,
                                                                        django_capture_on_commit_callbacks):
    """pretix issues its invoice on payment: the Invoice Ninja invoice made while pending keeps the order's number."""
    ninja_event.settings.set("invoice_generate", "paid")
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    payment = record_bank_transfer(fake_invoiceninja, invoice, 16.0)
    deliver(client, hook(organizer), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks)
    order.refresh_from_db()
    assert order.status == Order.STATUS_PAID
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_invoiceninja.store["invoices"]) == 1 and len(fake_invoiceninja.store["payments"]) == 1


@pytest.mark.django_db
def test_ninja_payment_amount_or_currency_mismatch_refused(client, admin_client, ninja_event, item, organizer, fake_invoiceninja,
                                                           django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    partial = record_bank_transfer(fake_invoiceninja, invoice, 10.0)
    assert deliver(client, hook(organizer), fake_invoiceninja, partial["id"], django_capture_on_commit_callbacks).status_code == 202
    order.refresh_from_db()
    assert order.status == Order.STATUS_PENDING
    with scopes_disabled():
        assert not order.payments.exists()
    [(action, data)] = [(a, d) for a, d in log_actions(order) if a.startswith("pretix_crm_bridge.invoiceninja")]
    assert action == "pretix_crm_bridge.invoiceninja.payment.refused"
    assert data["reason"] == "The payment is 10.00 EUR, the order still owes 16.00 EUR." and data["amount"] == "10.00"

    # the rest, in dollars: refused too
    fake_invoiceninja.duplicate_window = 0
    dollars = record_bank_transfer(fake_invoiceninja, invoice, 6.0, currency_id="1")
    deliver(client, hook(organizer), fake_invoiceninja, dollars["id"], django_capture_on_commit_callbacks)
    order.refresh_from_db()
    assert order.status == Order.STATUS_PENDING
    assert log_actions(order)[-1][1]["reason"] == "The payment is in USD, the order in EUR."
    page = admin_client.get(CONN).content.decode()  # visible to the organiser on the connections page
    assert "the order still owes 16.00 EUR" in page and "The payment is in USD" in page


@pytest.mark.django_db
def test_ninja_payment_unknown_invoice_refused(client, admin_client, ninja_event, item, organizer, fake_invoiceninja,
                                               django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    client_id = ninja_invoice(fake_invoiceninja, order.full_code)["client_id"]
    other = ninja_api(fake_invoiceninja, "POST", "/api/v1/invoices", params={"mark_sent": "true"}, json={
        "client_id": client_id, "number": "CONSULTING-7", "line_items": [{"product_key": "Consulting", "cost": 16.0, "quantity": 1}]})
    payment = record_bank_transfer(fake_invoiceninja, other, 16.0)
    assert deliver(client, hook(organizer), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 202
    order.refresh_from_db()
    assert order.status == Order.STATUS_PENDING
    [data] = organizer_log(organizer, "pretix_crm_bridge.invoiceninja.payment.unmatched")
    assert data["invoice_number"] == "CONSULTING-7" and "No pretix order of this organizer" in data["reason"]
    assert "CONSULTING-7" in admin_client.get(CONN).content.decode()


@pytest.mark.django_db
def test_ninja_payment_already_paid_order_refused(client, ninja_event, item, organizer, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    pay(order)  # paid in pretix meanwhile (e.g. by card), before the queue told Invoice Ninja
    payment = record_bank_transfer(fake_invoiceninja, invoice, 16.0)
    deliver(client, hook(organizer), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks)
    with scopes_disabled():
        assert order.payments.count() == 1
    assert log_actions(order)[-1] == ("pretix_crm_bridge.invoiceninja.payment.refused", {
        "payment_id": payment["id"], "payment_number": payment["number"], "transaction_reference": "VIR SEPA 20260802 DUPONT",
        "invoice_number": order.full_code, "amount": "16.00", "currency": "EUR", "reason": "The order is already paid."})


@pytest.mark.django_db
def test_ninja_webhook_wrong_secret_refused_and_logged_without_it(client, ninja_event, item, organizer, fake_invoiceninja, caplog,
                                                                  django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    payment = record_bank_transfer(fake_invoiceninja, ninja_invoice(fake_invoiceninja, order.full_code), 16.0)
    forged = "/_crm/invoiceninja/demo/forged-secret-0123456789abcdefghijklmnopq/"
    assert deliver(client, forged, fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 404
    assert client.get(hook(organizer)).status_code == 405
    assert deliver(client, "/_crm/invoiceninja/nobody/x/", fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 404
    assert "forged-secret" not in caplog.text and "wrong secret" in caplog.text
    assert not fake_invoiceninja.received("GET", r"^/api/v1/payments/")
    order.refresh_from_db()
    assert order.status == Order.STATUS_PENDING


@pytest.mark.django_db
def test_ninja_webhook_duplicates_are_harmless(client, ninja_event, item, organizer, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    payment = record_bank_transfer(fake_invoiceninja, ninja_invoice(fake_invoiceninja, order.full_code), 16.0)
    url = hook(organizer)
    assert deliver(client, url, fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 202
    assert deliver(client, url, fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 200  # same body
    # the same payment again with another body (an "update payment" event): re-fetched, not applied twice
    r = deliver(client, url, fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks,
                lambda p: p.update(updated_at=p["updated_at"] + 5))
    assert r.status_code == 202
    assert len(fake_invoiceninja.received("GET", rf"^/api/v1/payments/{payment['id']}$")) == 2
    order.refresh_from_db()
    with scopes_disabled():
        assert order.status == Order.STATUS_PAID and order.payments.count() == 1
    assert [a for a, _d in log_actions(order)].count("pretix_crm_bridge.invoiceninja.payment.accepted") == 1


@pytest.mark.django_db
def test_ninja_payment_recorded_by_the_bridge_is_ignored(client, ninja_event, item, organizer, fake_invoiceninja,
                                                         django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    [own] = fake_invoiceninja.store["payments"].values()
    assert own["idempotency_key"].startswith("pretix:")
    n_logs = len(log_actions(order))
    assert deliver(client, hook(organizer), fake_invoiceninja, own["id"], django_capture_on_commit_callbacks).status_code == 202
    with scopes_disabled():
        assert order.payments.count() == 1
    assert len(log_actions(order)) == n_logs  # nothing: neither applied nor reported as refused
    assert organizer_log(organizer, "pretix_crm_bridge.invoiceninja.payment.unmatched") == []


@pytest.mark.django_db
def test_ninja_payment_of_another_organizers_order_refused(client, ninja_event, item, organizer, fake_invoiceninja,
                                                           django_capture_on_commit_callbacks):
    """Two organisers on the same Invoice Ninja: a payment sent to the other organiser's URL never pays this order."""
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    payment = record_bank_transfer(fake_invoiceninja, ninja_invoice(fake_invoiceninja, order.full_code), 16.0)
    with scopes_disabled():
        other = Organizer.objects.create(name="Other", slug="other")
        Event.objects.create(organizer=other, name="Concert", slug="concert", date_from=ninja_event.date_from, plugins="pretix_crm_bridge")
        other.enable_plugin("pretix_crm_bridge")
        other.save()
        connect_ninja(other, fake_invoiceninja)
    assert deliver(client, hook(other), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 202
    order.refresh_from_db()
    assert order.status == Order.STATUS_PENDING
    assert organizer_log(other, "pretix_crm_bridge.invoiceninja.payment.unmatched")[0]["invoice_number"] == order.full_code
    assert organizer_log(organizer, "pretix_crm_bridge.invoiceninja.payment.unmatched") == []


@pytest.mark.django_db
def test_webhook_urls_on_the_connections_page_and_regenerated(admin_client, client, ninja_event, organizer, fake_invoiceninja):
    page = admin_client.get(CONN).content.decode()
    old = hook(organizer)
    assert old in page and "Create Payment" in page
    r = admin_client.post(CONN + "webhook-url/invoiceninja/", follow=True)
    assert r.status_code == 200
    new = hook(organizer)
    assert new != old and new in r.content.decode() and old not in r.content.decode()
    assert client.post(old, "{}", content_type="application/json").status_code == 404
    assert client.post(new, "{}", content_type="application/json").status_code == 202
    assert organizer_log(organizer, "pretix_crm_bridge.webhook_url.regenerated") == [{"system": "invoiceninja"}]
    assert admin_client.post(CONN + "webhook-url/other/").status_code == 404


@pytest.mark.django_db
def test_webhook_url_regeneration_needs_the_organizer_settings_permission(client, ninja_event, organizer, fake_invoiceninja):
    url = hook(organizer)
    u = User.objects.create_user("staff@example.org", "staff-password")
    t = Team.objects.create(organizer=organizer, name="Staff", all_events=True,
                            limit_event_permissions={"event.orders:read": True, "event.orders:write": True})
    t.members.add(u)
    assert client.login(email="staff@example.org", password="staff-password")
    assert client.post(CONN + "webhook-url/invoiceninja/").status_code == 403
    assert client.get(CONN).status_code == 403
    assert hook(organizer) == url
    with scopes_disabled():
        Organizer.objects.create(name="Other", slug="other")
    admin = User.objects.create_user("admin2@example.org", "admin-password")
    Team.objects.create(organizer=organizer, name="Admins2", all_events=True, all_organizer_permissions=True).members.add(admin)
    assert client.login(email="admin2@example.org", password="admin-password")
    assert client.post("/control/organizer/other/crm/webhook-url/invoiceninja/").status_code in (403, 404)


# -- consent withdrawal: pretix's data shredder, the buyer's order page ----------------------------

@pytest.fixture
def mautic_event(crm_event):
    crm_event.settings.set(config.NINJA_ENABLED, False)
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "1")
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PAID, "2")
    return crm_event


def synced_paid_order(event, item, django_capture_on_commit_callbacks, **kwargs):
    order = make_order(event, item, **kwargs)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    return order


@pytest.mark.django_db
def test_data_shredder_removes_the_contacts_from_the_segments(admin_client, mautic_event, item, fake_mautic, django_capture_on_commit_callbacks):
    jane = synced_paid_order(mautic_event, item, django_capture_on_commit_callbacks)
    joe = synced_paid_order(mautic_event, item, django_capture_on_commit_callbacks, email="joe@example.org", consent=False)
    [contact] = fake_mautic.contacts.values()
    assert fake_mautic.segments[1]["members"] == {contact["id"]} == fake_mautic.segments[2]["members"]
    mautic_event.date_from = now() - timedelta(days=30)
    mautic_event.live = False
    mautic_event.save()

    session = admin_client.session
    session["pretix_auth_login_time"] = int(time.time())  # pretix asks for a recent login before shredding
    session.save()
    page = admin_client.get("/control/event/demo/concert/shredder/").content.decode()
    assert "Marketing consent (Mautic)" in page
    n = len(fake_mautic.requests)
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post("/control/event/demo/concert/shredder/export",
                              {"shredder": ["order_emails", "pretix_crm_bridge_marketing_consent"]})
    assert r.status_code == 302, r.content
    file_id = r["Location"].rstrip("/").split("/")[-1]
    with scopes_disabled():
        cf = CachedFile.objects.get(pk=file_id)
        with ZipFile(io.BytesIO(cf.file.read())) as z:
            code = z.read("CONFIRM_CODE.txt").decode()
            exported = json.loads(z.read("marketing-consent-by-order.json"))
    assert exported[jane.code] == {"consent": True, "mautic_contact_id": contact["id"]} and exported[joe.code]["consent"] is False
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_client.post("/control/event/demo/concert/shredder/shred", {"file": file_id, "confirm_code": code, "slug": "concert"})
    assert r.status_code == 302
    jane.refresh_from_db()
    assert jane.email is None and not consent(jane)
    assert ("pretix_crm_bridge.consent.withdrawn", {"source": "shredder"}) in log_actions(jane)
    assert len(fake_mautic.requests) == n  # the shredder only queues: Mautic is cleaned up by the data-sync queue
    assert [q.triggered_by for q in queue_rows(jane, MauticSync.identifier)] == ["consent_withdrawn"]
    assert queue_rows(joe, MauticSync.identifier) == []  # never sent to Mautic: nothing to clean up

    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(jane, MauticSync.identifier) == []
    assert fake_mautic.segments[1]["members"] == set() == fake_mautic.segments[2]["members"]
    assert [d["reason"] for d in fake_mautic.contacts[contact["id"]]["dnc"]] == [1]
    assert results(jane, MauticSync.identifier)[1].sync_info["action"] == "consent_withdrawn"


@pytest.mark.django_db
def test_buyer_withdraws_consent_from_the_order_page(client, mautic_event, item, fake_mautic, django_capture_on_commit_callbacks):
    order = synced_paid_order(mautic_event, item, django_capture_on_commit_callbacks)
    page = client.get(f"/demo/concert/order/{order.code}/{order.secret}/").content.decode()
    assert "Stop sending me news" in page
    url = f"/demo/concert/crm/order/{order.code}/{order.secret}/withdraw-consent/"
    assert client.post(f"/demo/concert/crm/order/{order.code}/wrongsecret/withdraw-consent/").status_code == 404
    order.refresh_from_db()
    assert consent(order)
    n = len(fake_mautic.requests)
    r = client.post(url, follow=True)
    assert r.status_code == 200 and "You will no longer receive news" in r.content.decode()
    assert "Stop sending me news" not in r.content.decode()
    order.refresh_from_db()
    assert not consent(order) and log_actions(order)[-1] == ("pretix_crm_bridge.consent.withdrawn", {"source": "buyer"})
    assert len(fake_mautic.requests) == n
    run_queue(django_capture_on_commit_callbacks)
    assert fake_mautic.segments[1]["members"] == set() and results(order, MauticSync.identifier)[1].sync_info["action"] == "consent_withdrawn"


# -- Mautic webhooks ---------------------------------------------------------------------------------

@pytest.fixture
def mautic_hooked(mautic_event, organizer, fake_mautic):
    crypto.set_secret(organizer.settings, config.MAUTIC_WEBHOOK_SECRET, fake_mautic.webhook_secret)
    return mautic_event


def mautic_hook(organizer):
    with scopes_disabled():
        return f"/_crm/mautic/{organizer.slug}/{ensure_path_secret(organizer, 'mautic')}/"


def post_mautic(client, url, fake, payload, django_capture_on_commit_callbacks, **knobs):
    body, headers = fake.build_webhook(payload, **knobs)
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(url, body, content_type="application/json", **extra)


def unsubscribed(fake, contact_id, new_status="unsubscribed"):
    return {"mautic.lead_channel_subscription_changed": [
        fake.webhook_entry("mautic.lead_channel_subscription_changed", contact_id, channel="email", old_status="contactable",
                           new_status=new_status)]}


@pytest.mark.django_db
def test_mautic_unsubscribe_withdraws_consent_and_a_later_payment_pushes_no_segment(
        client, mautic_hooked, item, organizer, fake_mautic, django_capture_on_commit_callbacks):
    order = make_order(mautic_hooked, item)
    other = make_order(mautic_hooked, item, email="someone.else@example.org")
    with scope(organizer=organizer):
        order_placed.send(mautic_hooked, order=order)
    run_queue(django_capture_on_commit_callbacks)
    [contact] = fake_mautic.contacts.values()
    assert fake_mautic.segments[1]["members"] == {contact["id"]}

    r = post_mautic(client, mautic_hook(organizer), fake_mautic, unsubscribed(fake_mautic, contact["id"]), django_capture_on_commit_callbacks)
    assert r.status_code == 202
    order.refresh_from_db()
    other.refresh_from_db()
    assert not consent(order) and consent(other)
    assert log_actions(order)[-1] == ("pretix_crm_bridge.consent.withdrawn", {"source": "mautic", "mautic_contact_id": contact["id"]})

    pay(order)  # paid later: no "order paid" segment, and the contact leaves the "order placed" one
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, MauticSync.identifier) == []
    assert fake_mautic.segments[2]["members"] == set() and fake_mautic.segments[1]["members"] == set()
    assert not fake_mautic.received("POST", r"^/api/segments/\d+/contact/\d+/add$")[1:]  # only the placed one, before

    # the same delivery again: acknowledged, nothing more
    n = len(log_actions(order))
    r = post_mautic(client, mautic_hook(organizer), fake_mautic, unsubscribed(fake_mautic, contact["id"]), django_capture_on_commit_callbacks)
    assert r.status_code in (200, 202) and len(log_actions(order)) == n


@pytest.mark.django_db
def test_mautic_do_not_contact_withdraws_consent_bounce_and_contact_updates_do_not(
        client, mautic_hooked, item, organizer, fake_mautic, django_capture_on_commit_callbacks):
    order = synced_paid_order(mautic_hooked, item, django_capture_on_commit_callbacks)
    [contact] = fake_mautic.contacts.values()
    post_mautic(client, mautic_hook(organizer), fake_mautic, unsubscribed(fake_mautic, contact["id"], "bounced"), django_capture_on_commit_callbacks)
    assert consent(order)  # a bounce is not a withdrawal
    # a contact update of a contact marked "do not contact" describes a state, not a change: not a withdrawal
    fake_mautic.contacts[contact["id"]]["dnc"].append({"id": 99, "reason": 1, "comments": "", "channel": "email", "channelId": None})
    payload = {"mautic.lead_post_save_update": [fake_mautic.webhook_entry("mautic.lead_post_save_update", contact["id"])]}
    assert post_mautic(client, mautic_hook(organizer), fake_mautic, payload, django_capture_on_commit_callbacks).status_code == 202
    assert consent(order)
    # "do not contact" set by hand in Mautic
    r = post_mautic(client, mautic_hook(organizer), fake_mautic, unsubscribed(fake_mautic, contact["id"], "manual"),
                    django_capture_on_commit_callbacks)
    assert r.status_code == 202
    assert not consent(order)


@pytest.mark.django_db
def test_mautic_webhook_forged_or_unsigned_refused(client, mautic_hooked, item, organizer, fake_mautic, caplog,
                                                   django_capture_on_commit_callbacks):
    order = synced_paid_order(mautic_hooked, item, django_capture_on_commit_callbacks)
    [contact] = fake_mautic.contacts.values()
    url = mautic_hook(organizer)
    payload = unsubscribed(fake_mautic, contact["id"])
    assert post_mautic(client, url, fake_mautic, payload, django_capture_on_commit_callbacks, wrong_key=True).status_code == 403
    assert post_mautic(client, url, fake_mautic, payload, django_capture_on_commit_callbacks, missing_signature=True).status_code == 403
    body, headers = fake_mautic.build_webhook(payload)
    altered = body.replace(b'"unsubscribed"', b'"manual"')
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, altered, content_type="application/json", HTTP_WEBHOOK_SIGNATURE=headers["Webhook-Signature"]).status_code == 403
    assert post_mautic(client, "/_crm/mautic/demo/forged-path-secret-abcdefghijklmnopqrstu/", fake_mautic, payload,
                       django_capture_on_commit_callbacks).status_code == 404
    crypto.set_secret(organizer.settings, config.MAUTIC_WEBHOOK_SECRET, "")  # no signing secret entered: nothing is accepted
    assert post_mautic(client, url, fake_mautic, payload, django_capture_on_commit_callbacks).status_code == 403
    order.refresh_from_db()
    assert consent(order)
    assert "forged-path-secret" not in caplog.text and fake_mautic.webhook_secret not in caplog.text


@pytest.mark.django_db
def test_mautic_webhook_of_another_organizer_touches_nothing_here(client, mautic_hooked, item, organizer, fake_mautic,
                                                                  django_capture_on_commit_callbacks):
    order = synced_paid_order(mautic_hooked, item, django_capture_on_commit_callbacks)
    [contact] = fake_mautic.contacts.values()
    with scopes_disabled():
        other = Organizer.objects.create(name="Other", slug="other")
        other.enable_plugin("pretix_crm_bridge")
        other.save()
    connect_mautic(other, fake_mautic)
    crypto.set_secret(other.settings, config.MAUTIC_WEBHOOK_SECRET, fake_mautic.webhook_secret)
    assert post_mautic(client, mautic_hook(other), fake_mautic, unsubscribed(fake_mautic, contact["id"]),
                       django_capture_on_commit_callbacks).status_code == 202
    order.refresh_from_db()
    assert consent(order)


# -- cancellations in Invoice Ninja ------------------------------------------------------------------

def cancel(order, fee=None):
    from pretix.base.services.orders import cancel_order
    with scope(organizer=order.event.organizer):
        cancel_order(order.pk, cancellation_fee=fee, try_auto_refund=False)
    order.refresh_from_db()


def refund(order, payment, amount):
    """A refund done in pretix (pretix has no signal for it: the bridge listens to the refund being saved)."""
    from pretix.base.models import OrderRefund
    with scope(organizer=order.event.organizer):
        OrderRefund.objects.create(order=order, payment=payment, amount=amount, state=OrderRefund.REFUND_STATE_DONE, provider="manual",
                                   source=OrderRefund.REFUND_SOURCE_ADMIN)


@pytest.mark.django_db
def test_cancelled_unpaid_order_cancels_its_invoice(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    assert invoice["status_id"] == "2" and invoice["balance"] == 16.0
    cancel(order)
    assert [q.triggered_by for q in queue_rows(order, NINJA)] == ["order_canceled"]
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, NINJA) == []
    assert invoice["status_id"] == "5" and invoice["balance"] == 0 and fake_invoiceninja.store["payments"] == {}
    assert results(order, NINJA)[2].sync_info["cancelled"] is True
    [call] = fake_invoiceninja.received("POST", r"^/api/v1/invoices/bulk$")
    assert call.json == {"action": "cancel", "ids": [invoice["id"]]}
    InvoiceNinjaSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert len(fake_invoiceninja.received("POST", r"^/api/v1/invoices/bulk$")) == 1  # once


@pytest.mark.django_db
def test_cancelled_paid_order_refunded_then_nothing_left_open(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    ninja_event.settings.set(config.NINJA_INVOICE_PENDING, False)
    order = make_order(ninja_event, item)
    p = pay(order)
    run_queue(django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    assert invoice["status_id"] == "4"
    cancel(order)
    run_queue(django_capture_on_commit_callbacks)
    assert invoice["status_id"] == "4" and invoice["paid_to_date"] == 16.0  # cancelled, but not refunded yet: nothing to change
    refund(order, p, Decimal("16.00"))
    run_queue(django_capture_on_commit_callbacks)
    [payment] = fake_invoiceninja.store["payments"].values()
    assert payment["refunded"] == 16.0
    assert invoice["paid_to_date"] == 0 and invoice["balance"] == 0 and invoice["status_id"] == "5"


@pytest.mark.django_db
def test_cancellation_fee_stays_paid_and_nothing_is_left_open(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    ninja_event.settings.set(config.NINJA_INVOICE_PENDING, False)
    order = make_order(ninja_event, item)
    p = pay(order)
    run_queue(django_capture_on_commit_callbacks)
    cancel(order, fee=Decimal("5.00"))
    assert order.status == Order.STATUS_PAID and order.total == Decimal("5.00")
    refund(order, p, Decimal("11.00"))
    run_queue(django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    [payment] = fake_invoiceninja.store["payments"].values()
    assert payment["refunded"] == 11.0
    assert invoice["paid_to_date"] == 5.0 and invoice["balance"] == 0 and invoice["status_id"] == "5"
    InvoiceNinjaSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert payment["refunded"] == 11.0 and len(fake_invoiceninja.received("POST", r"^/api/v1/invoices/bulk$")) == 1


@pytest.mark.django_db
def test_order_cancelled_with_a_fee_before_its_job_ran(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    """The invoice is made after the cancellation: it shows the fee, paid; the refund of the rest takes nothing off it."""
    ninja_event.settings.set(config.NINJA_INVOICE_PENDING, False)
    order = make_order(ninja_event, item)
    p = pay(order)
    cancel(order, fee=Decimal("5.00"))
    refund(order, p, Decimal("11.00"))
    assert [q.triggered_by for q in queue_rows(order, NINJA)] == ["refund_done"]  # one waiting job, refreshed
    run_queue(django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    [payment] = fake_invoiceninja.store["payments"].values()
    assert invoice["amount"] == 5.0 and invoice["paid_to_date"] == 5.0 and invoice["balance"] == 0 and invoice["status_id"] == "4"
    assert payment["amount"] == 5.0 and payment["refunded"] == 0
    assert not fake_invoiceninja.received("POST", r"^/api/v1/payments/refund$")


@pytest.mark.django_db
def test_mautic_order_cancelled_while_its_job_waits_sends_the_cancelled_state(mautic_event, item, fake_mautic,
                                                                              django_capture_on_commit_callbacks):
    mautic_event.settings.set(config.MAUTIC_CAMPAIGNS_PAID, "1")
    order = make_order(mautic_event, item)
    pay(order)
    assert [q.triggered_by for q in queue_rows(order, MauticSync.identifier)] == ["order_paid"]
    cancel(order)
    assert [q.triggered_by for q in queue_rows(order, MauticSync.identifier)] == ["order_canceled"]  # refreshed, not doubled
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, MauticSync.identifier) == []
    [contact] = fake_mautic.contacts.values()
    assert fake_mautic.segments[1]["members"] == {contact["id"]}  # "order placed"
    assert fake_mautic.segments[2]["members"] == set() and fake_mautic.campaigns[1]["members"] == set()  # not "paid" any more
    assert len(fake_mautic.received("POST", r"^/api/contacts/new$")) == 1


@pytest.mark.django_db
def test_ninja_webhook_registered_in_invoice_ninja_once(admin_client, client, ninja_event, item, organizer, fake_invoiceninja,
                                                        django_capture_on_commit_callbacks):
    r = admin_client.post(CONN + "invoiceninja-webhook/", follow=True)
    assert "Invoice Ninja now sends the payments you record there to pretix." in r.content.decode()
    [subscription] = fake_invoiceninja.store["webhooks"].values()
    assert subscription["event_id"] == "4" and subscription["target_url"].endswith(hook(organizer))
    r = admin_client.post(CONN + "invoiceninja-webhook/", follow=True)
    assert "already sends its payments" in r.content.decode() and len(fake_invoiceninja.store["webhooks"]) == 1
    # the address Invoice Ninja got works: a payment delivered there pays the order
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    payment = record_bank_transfer(fake_invoiceninja, ninja_invoice(fake_invoiceninja, order.full_code), 16.0)
    path = subscription["target_url"].split("://", 1)[1].split("/", 1)[1]
    assert deliver(client, "/" + path, fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks).status_code == 202
    order.refresh_from_db()
    assert order.status == Order.STATUS_PAID

    fake_invoiceninja.fail_next(method="POST", path=r"^/api/v1/webhooks$", status=403,
                                body=json.dumps({"message": "Invalid token", "errors": {}}).encode())
    fake_invoiceninja.store["webhooks"].clear()
    r = admin_client.post(CONN + "invoiceninja-webhook/", follow=True)
    assert "could not be registered in Invoice Ninja" in r.content.decode()


@pytest.mark.django_db
def test_ninja_webhook_registration_needs_the_organizer_settings_permission(client, ninja_event, organizer, fake_invoiceninja):
    u = User.objects.create_user("staff@example.org", "staff-password")
    Team.objects.create(organizer=organizer, name="Staff", all_events=True, all_event_permissions=True).members.add(u)
    assert client.login(email="staff@example.org", password="staff-password")
    assert client.post(CONN + "invoiceninja-webhook/").status_code == 403
    assert fake_invoiceninja.store["webhooks"] == {} and not fake_invoiceninja.requests


@pytest.mark.django_db
def test_unpaid_order_cancelled_with_a_fee_owes_the_fee_in_invoice_ninja(client, ninja_event, item, organizer, fake_invoiceninja,
                                                                         django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    cancel(order, fee=Decimal("5.00"))
    assert order.status == Order.STATUS_PENDING and order.total == Decimal("5.00")
    run_queue(django_capture_on_commit_callbacks)
    assert invoice["amount"] == 5.0 and invoice["balance"] == 5.0 and invoice["status_id"] == "2"
    assert [li["cost"] for li in invoice["line_items"]] == [5.0]
    # the buyer pays the fee by bank transfer, reconciled in Invoice Ninja
    payment = record_bank_transfer(fake_invoiceninja, invoice, 5.0)
    deliver(client, hook(organizer), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks)
    order.refresh_from_db()
    assert order.status == Order.STATUS_PAID
    run_queue(django_capture_on_commit_callbacks)
    assert invoice["status_id"] == "4" and len(fake_invoiceninja.store["payments"]) == 1


@pytest.mark.django_db
def test_refund_of_a_payment_reconciled_in_invoice_ninja_is_refunded_there(client, ninja_event, item, organizer, fake_invoiceninja,
                                                                           django_capture_on_commit_callbacks):
    order = placed_order(ninja_event, item, django_capture_on_commit_callbacks)
    invoice = ninja_invoice(fake_invoiceninja, order.full_code)
    payment = record_bank_transfer(fake_invoiceninja, invoice, 16.0)
    deliver(client, hook(organizer), fake_invoiceninja, payment["id"], django_capture_on_commit_callbacks)
    run_queue(django_capture_on_commit_callbacks)
    with scopes_disabled():
        [p] = order.payments.all()
    cancel(order)
    refund(order, p, Decimal("16.00"))  # paid back by bank transfer, recorded in pretix
    run_queue(django_capture_on_commit_callbacks)
    stored = fake_invoiceninja.store["payments"]
    assert len(stored) == 1 and next(iter(stored.values()))["refunded"] == 16.0
    assert invoice["paid_to_date"] == 0 and invoice["balance"] == 0 and invoice["status_id"] == "5"
