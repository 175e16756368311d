"""
The CRM bridge's jobs drained by a real Celery worker on redis, as pretix runs in production (PostgreSQL + redis CI job).

An order is placed and then paid while tasks travel through the broker: each signal puts the order in pretix's
data-sync queue and hands the job to the worker right after the commit (``sync_single``), and pretix's periodic run
(``sync_all``) is published as well, racing them. The separate worker process started by
``tests/test_celery_worker.py``'s fixture (same skip rule, same isolated redis database, same reset of the Celery
pools) calls the fake Mautic and Invoice Ninja over HTTP; each must end with exactly one contact, client, invoice and
payment, and the queue empty.
"""
import time

import pytest
from django.db import connection
from django.test import override_settings
from django_scopes import scope, scopes_disabled

from pretix.base.models.datasync import OrderSyncQueue, OrderSyncResult
from pretix.base.services.datasync import sync_all
from pretix.base.signals import order_placed

from pretix_crm_bridge import config
from pretix_crm_bridge.sync import InvoiceNinjaSync, MauticSync
from tests.crm_utils import make_order, pay
from tests.test_celery_worker import REDIS, TASK_TIMEOUT, celery_worker_process  # NOQA: F401 - the fixture

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql" or not REDIS.startswith("redis://"),
    reason="needs PostgreSQL and redis (the CI job that runs them): the worker is a separate process",
)


def wait_until(condition, log, what):
    deadline = time.monotonic() + TASK_TIMEOUT
    while time.monotonic() < deadline:
        with scopes_disabled():
            if condition():
                return
        time.sleep(0.2)
    with scopes_disabled():
        left = list(OrderSyncQueue.objects.values("sync_provider", "triggered_by", "failed_attempts", "need_manual_retry", "in_flight"))
    pytest.fail(f"the worker did not {what}; queue: {left}\nworker log:\n" + "".join(log[-40:]))


@pytest.mark.django_db(transaction=True)
@override_settings(HAS_CELERY=True)
def test_crm_jobs_are_drained_by_a_real_worker(crm_event, item, fake_mautic, fake_invoiceninja, celery_worker_process):  # NOQA: F811
    crm_event.settings.set(config.MAUTIC_SEGMENTS_PLACED, "1")
    crm_event.settings.set(config.MAUTIC_CAMPAIGNS_PAID, "1")
    worker_log = celery_worker_process()  # from now on tasks go to redis and the worker

    order = make_order(crm_event, item)
    with scope(organizer=crm_event.organizer):
        order_placed.send(crm_event, order=order)  # as pretix's checkout does: queued, handed to the worker after commit
    wait_until(lambda: not OrderSyncQueue.objects.exists() and fake_invoiceninja.store["clients"] and fake_mautic.contacts,
               worker_log, "sync the placed order")
    assert fake_invoiceninja.store["invoices"] == {}  # not paid yet

    pay(order)  # what "mark as paid" does: order_paid -> queued -> sync_single published after the commit
    sync_all.apply_async()  # pretix's periodic run, racing the job the payment handed over
    wait_until(lambda: not OrderSyncQueue.objects.exists() and fake_invoiceninja.store["payments"], worker_log, "sync the paid order")

    store = fake_invoiceninja.store
    assert [len(store[k]) for k in ("clients", "invoices", "payments")] == [1, 1, 1]
    [invoice], [payment] = store["invoices"].values(), store["payments"].values()
    assert invoice["number"] == order.full_code and invoice["status_id"] == "4" and payment["amount"] == float(order.total)
    assert len(fake_invoiceninja.received("POST", r"^/api/v1/invoices$")) == 1
    assert len(fake_invoiceninja.received("POST", r"^/api/v1/payments$")) == 1
    [contact] = fake_mautic.contacts.values()
    assert contact["values"]["email"] == order.email
    assert fake_mautic.segments[1]["members"] == {contact["id"]} and fake_mautic.campaigns[1]["members"] == {contact["id"]}
    assert len(fake_mautic.received("POST", r"^/api/campaigns/")) == 1
    with scopes_disabled():
        assert set(OrderSyncResult.objects.filter(order=order).values_list("sync_provider", "mapping_id")) == {
            (MauticSync.identifier, 1), (InvoiceNinjaSync.identifier, 1), (InvoiceNinjaSync.identifier, 2)}
    log = "".join(worker_log)
    assert "pretix.base.services.datasync.sync_single" in log and "succeeded" in log
