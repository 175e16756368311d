"""CRM bridge → Invoice Ninja through pretix's doors: order signals, pretix's data-sync queue, fake Invoice Ninja over HTTP."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.models import OrderFee, TaxRule
from pretix.base.services.invoices import generate_invoice

from pretix_crm_bridge import config
from pretix_crm_bridge.sync import InvoiceNinjaSync
from pretix_integrations_core import crypto

from .crm_utils import make_order, pay, queue_rows, results, run_queue

P = InvoiceNinjaSync.identifier


@pytest.fixture
def ninja_event(crm_event):
    crm_event.settings.set(config.MAUTIC_ENABLED, False)
    return crm_event


def entities(fake, kind):
    return list(fake.store[kind].values())


def log_actions(order):
    with scopes_disabled():
        return [(e.action_type, e.parsed_data) for e in order.all_logentries().order_by("pk")]


def taxed_order(event, item, count=2):
    """Two 16 € tickets with 20 % VAT included, and a 1.50 € payment fee."""
    with scopes_disabled():
        rule = TaxRule.objects.create(event=event, name="TVA", rate=Decimal("20.00"), price_includes_tax=True)
        order = make_order(event, item, count=count)
        for p in order.positions.all():
            p.tax_rule, p.tax_rate, p.tax_value = rule, Decimal("20.00"), Decimal("2.67")
            p.save()
        OrderFee.objects.create(order=order, fee_type=OrderFee.FEE_TYPE_PAYMENT, value=Decimal("1.50"), tax_rule=rule,
                                tax_rate=Decimal("20.00"), tax_value=Decimal("0.25"))
        order.total = Decimal("33.50")
        order.save()
    return order


@pytest.mark.django_db
def test_paid_order_client_invoice_payment_once(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = taxed_order(ninja_event, item)
    with scope(organizer=ninja_event.organizer):
        from pretix.base.signals import order_placed
        order_placed.send(ninja_event, order=order)  # as pretix's checkout does
    run_queue(django_capture_on_commit_callbacks)
    clients = entities(fake_invoiceninja, "clients")
    assert len(clients) == 1 and entities(fake_invoiceninja, "invoices") == []  # not paid yet: client only
    assert clients[0]["id_number"] == "pretix:jane@example.org" and clients[0]["contacts"][0]["email"] == "jane@example.org"

    pay(order)
    fake_invoiceninja.reset()
    run_queue(django_capture_on_commit_callbacks)
    # the client is known from the "order placed" job with the same details, and on a first attempt the invoice number
    # (unique in Invoice Ninja) guards the create: the invoice and the payment, no other call
    assert [(r.method, r.path) for r in fake_invoiceninja.requests] == [("POST", "/api/v1/invoices"), ("POST", "/api/v1/payments")]
    [invoice] = entities(fake_invoiceninja, "invoices")
    assert invoice["number"] == order.full_code and invoice["po_number"] == order.code
    assert invoice["uses_inclusive_taxes"] is True
    assert [(li["product_key"], li["cost"], li["tax_rate1"], li["tax_name1"]) for li in invoice["line_items"]] == [
        ("Ticket", 16.0, 20.0, "TVA"), ("Ticket", 16.0, 20.0, "TVA"), ("Payment fee", 1.5, 20.0, "TVA")]
    assert invoice["amount"] == 33.5 and invoice["status_id"] == "4" and invoice["balance"] == 0
    [payment] = entities(fake_invoiceninja, "payments")
    with scopes_disabled():
        local_id = order.payments.get().local_id
    assert payment["idempotency_key"] == f"pretix:{ninja_event.pk}:{order.code}:P{local_id}" and payment["amount"] == 33.5
    res = results(order, P)
    assert res[2].sync_info["invoice_id"] == invoice["id"] and res[1].sync_info["client_id"] == clients[0]["id"]
    assert queue_rows(order, P) == []

    # the same job again ("Sync now", or any later order signal): nothing new
    fake_invoiceninja.reset()
    InvoiceNinjaSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert [len(entities(fake_invoiceninja, k)) for k in ("clients", "invoices", "payments")] == [1, 1, 1]
    assert [(r.method, r.path) for r in fake_invoiceninja.requests] == [("GET", "/api/v1/invoices")]  # a re-run looks the invoice up

    # the buyer's address changed: the client is looked up and updated, the invoice stays
    with scopes_disabled():
        from pretix.base.models import InvoiceAddress
        InvoiceAddress.objects.create(order=order, name_parts={"_scheme": "full", "full_name": "Jane Doe"}, street="1 rue Neuve", city="Lyon")
    fake_invoiceninja.reset()
    InvoiceNinjaSync.enqueue_order(order, "order_modified")
    run_queue(django_capture_on_commit_callbacks)
    assert [(r.method, r.path) for r in fake_invoiceninja.requests] == [
        ("GET", "/api/v1/clients"), ("PUT", f"/api/v1/clients/{clients[0]['id']}"), ("GET", "/api/v1/invoices")]
    assert entities(fake_invoiceninja, "clients")[0]["city"] == "Lyon"


@pytest.mark.django_db
def test_client_deleted_between_two_jobs_is_looked_up_again(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    with scope(organizer=ninja_event.organizer):
        from pretix.base.signals import order_placed
        order_placed.send(ninja_event, order=order)
    run_queue(django_capture_on_commit_callbacks)
    [client] = entities(fake_invoiceninja, "clients")
    client["is_deleted"] = True  # deleted in Invoice Ninja after the "order placed" job
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 1 and row.need_manual_retry is None  # the invoice was refused: retried, client forgotten
    assert 1 not in results(order, P)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry is not None and "was deleted in Invoice Ninja" in log_actions(order)[-1][1]["error"][0]
    assert entities(fake_invoiceninja, "invoices") == []


@pytest.mark.django_db
def test_invoice_numbered_after_the_pretix_invoice(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    with scope(organizer=ninja_event.organizer):
        inv = generate_invoice(order)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    [invoice] = entities(fake_invoiceninja, "invoices")
    assert invoice["number"] == inv.number


@pytest.mark.django_db
def test_same_buyer_two_orders_one_client(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    for _ in range(2):
        pay(make_order(ninja_event, item))
    run_queue(django_capture_on_commit_callbacks)
    assert len(entities(fake_invoiceninja, "clients")) == 1 and len(entities(fake_invoiceninja, "invoices")) == 2


@pytest.mark.django_db
def test_lost_answer_after_creating_the_invoice_never_duplicates(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    pay(order)
    fake_invoiceninja.fail_next(method="POST", path=r"^/api/v1/invoices$", delay=0, drop=True)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 1 and row.need_manual_retry is None
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == []
    assert len(entities(fake_invoiceninja, "invoices")) == 1 and len(entities(fake_invoiceninja, "payments")) == 1


@pytest.mark.django_db
def test_invoice_created_by_a_lost_request_is_found_not_created_again(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    # as if the invoice and payment requests had reached Invoice Ninja but their answers were lost
    with scopes_disabled():
        from pretix.base.models.datasync import OrderSyncResult
        OrderSyncResult.objects.all().delete()
    InvoiceNinjaSync.enqueue_order(order, "retry")
    run_queue(django_capture_on_commit_callbacks)
    assert [len(entities(fake_invoiceninja, k)) for k in ("clients", "invoices", "payments")] == [1, 1, 1]


@pytest.mark.django_db
def test_dropped_payment_request_is_repeated_safely(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    """The payment carries its idempotency key: the HTTP layer may repeat it, Invoice Ninja records it once."""
    order = make_order(ninja_event, item)
    pay(order)
    fake_invoiceninja.fail_next(method="POST", path=r"^/api/v1/payments$", drop=True)
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == []
    assert len(fake_invoiceninja.received("POST", r"^/api/v1/payments$")) == 2
    assert len(entities(fake_invoiceninja, "payments")) == 1
    [invoice] = entities(fake_invoiceninja, "invoices")
    assert invoice["paid_to_date"] == 16.0


@pytest.mark.django_db
def test_invalid_token_is_a_config_failure(ninja_event, item, organizer, fake_invoiceninja, django_capture_on_commit_callbacks):
    crypto.set_secret(organizer.settings, config.NINJA_TOKEN, "revoked")
    order = make_order(ninja_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == "config"
    action, data = log_actions(order)[-1]
    assert action == "pretix.event.order.data_sync.failed.config" and "HTTP status 403" in data["error"][0] and "Invalid token" in data["error"][0]


@pytest.mark.django_db
def test_validation_error_is_permanent_with_the_field(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    pay(order)
    fake_invoiceninja.fail_next(method="POST", path=r"^/api/v1/invoices$", status=422,
                                body={"message": "The given data was invalid.", "errors": {"date": ["The date does not match the format Y-m-d."]}})
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == "permanent"
    assert "date: The date does not match the format Y-m-d." in log_actions(order)[-1][1]["error"][0]


@pytest.mark.django_db
def test_rate_limit_without_retry_after_waits_a_minute(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    pay(order)
    fake_invoiceninja.fail_next(method="POST", path=r"^/api/v1/clients$", status=429, body={"message": "Too many requests"})
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.failed_attempts == 1 and row.not_before >= now() + timedelta(seconds=59)
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == [] and len(entities(fake_invoiceninja, "invoices")) == 1


@pytest.mark.django_db
def test_deleted_invoice_number_is_a_readable_permanent_failure(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    order = make_order(ninja_event, item)
    pay(order)
    run_queue(django_capture_on_commit_callbacks)
    [invoice] = entities(fake_invoiceninja, "invoices")
    invoice["is_deleted"] = True
    InvoiceNinjaSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(order, P)
    assert row.need_manual_retry == "permanent"
    assert f"The invoice {order.full_code} was deleted in Invoice Ninja" in log_actions(order)[-1][1]["error"][0]


@pytest.mark.django_db
def test_duplicate_request_guard_is_retried_later(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    """Invoice Ninja refuses a second payment of the same amount for the same client within a second (400 "Duplicate request")."""
    first, second = make_order(ninja_event, item), make_order(ninja_event, item)
    pay(first)
    pay(second)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(second, P) or queue_rows(first, P)
    assert row.need_manual_retry is None and row.failed_attempts == 1 and row.not_before >= now() + timedelta(seconds=59)
    fake_invoiceninja.duplicate_window = 0
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(first, P) == [] and queue_rows(second, P) == []
    assert len(entities(fake_invoiceninja, "payments")) == 2 and len(entities(fake_invoiceninja, "invoices")) == 2


@pytest.mark.django_db
def test_order_canceled_while_its_job_waits_gets_no_invoice(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    from pretix.base.services.orders import cancel_order
    order = make_order(ninja_event, item)
    pay(order)
    with scope(organizer=ninja_event.organizer):
        cancel_order(order.pk, cancellation_fee=None, try_auto_refund=False)
    order.refresh_from_db()
    assert order.status == "c"
    [row] = queue_rows(order, P)
    assert row.triggered_by == "order_canceled"  # the waiting job was refreshed, not doubled
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == []
    assert entities(fake_invoiceninja, "invoices") == [] and entities(fake_invoiceninja, "payments") == []


@pytest.mark.django_db
def test_refund_and_cancel_refund_the_payment_once(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    from pretix.base.models import OrderRefund
    from pretix.base.services.orders import cancel_order
    order = make_order(ninja_event, item)
    p = pay(order)
    run_queue(django_capture_on_commit_callbacks)
    with scope(organizer=ninja_event.organizer):
        OrderRefund.objects.create(order=order, payment=p, amount=Decimal("16.00"), state=OrderRefund.REFUND_STATE_DONE, provider="manual",
                                   source=OrderRefund.REFUND_SOURCE_ADMIN)
        cancel_order(order.pk, cancellation_fee=None, try_auto_refund=False)
    assert [q.triggered_by for q in queue_rows(order, P)] == ["order_canceled"]

    fake_invoiceninja.fail_next(method="POST", path=r"^/api/v1/payments/refund$", status=503)
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P)[0].failed_attempts == 1
    run_queue(django_capture_on_commit_callbacks)
    assert queue_rows(order, P) == []
    [payment] = entities(fake_invoiceninja, "payments")
    [invoice] = entities(fake_invoiceninja, "invoices")
    assert payment["refunded"] == 16.0 and invoice["paid_to_date"] == 0
    assert results(order, P)[2].sync_info["refunded"] == 16.0

    InvoiceNinjaSync.enqueue_order(order, "manual")
    run_queue(django_capture_on_commit_callbacks)
    assert entities(fake_invoiceninja, "payments")[0]["refunded"] == 16.0  # computed from Invoice Ninja's state: never twice
    assert len(fake_invoiceninja.received("POST", r"^/api/v1/payments/refund$")) == 2  # the 503, then the one that worked


@pytest.mark.django_db
def test_archived_client_is_reused_deleted_client_is_a_readable_failure(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    pay(make_order(ninja_event, item))
    run_queue(django_capture_on_commit_callbacks)
    [client] = entities(fake_invoiceninja, "clients")
    client["archived_at"] = 1
    pay(make_order(ninja_event, item, name=("Jane", "Doe")))
    fake_invoiceninja.duplicate_window = 0
    run_queue(django_capture_on_commit_callbacks)
    assert len(entities(fake_invoiceninja, "clients")) == 1 and len(entities(fake_invoiceninja, "invoices")) == 2
    client["is_deleted"] = True
    third = make_order(ninja_event, item)
    pay(third)
    run_queue(django_capture_on_commit_callbacks)
    [row] = queue_rows(third, P)
    assert row.need_manual_retry == "permanent"
    assert "The client pretix:jane@example.org was deleted in Invoice Ninja" in log_actions(third)[-1][1]["error"][0]


@pytest.mark.django_db
def test_invoice_emailed_by_invoice_ninja_only_if_asked(ninja_event, item, fake_invoiceninja, django_capture_on_commit_callbacks):
    fake_invoiceninja.duplicate_window = 0
    pay(make_order(ninja_event, item))
    run_queue(django_capture_on_commit_callbacks)
    ninja_event.settings.set(config.NINJA_SEND_EMAIL, True)
    pay(make_order(ninja_event, item))
    run_queue(django_capture_on_commit_callbacks)
    posts = fake_invoiceninja.received("POST", r"^/api/v1/invoices$")
    assert [r.arg("send_email") for r in posts] == [None, "true"]
