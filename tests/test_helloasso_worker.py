"""
A HelloAsso sync through a real Celery worker on redis, as pretix runs in production (PostgreSQL + redis CI job).

The organiser links the event to a form and later presses "Sync now" on the event's HelloAsso page; each time
the task travels through the broker to the separate worker started by ``tests/test_celery_worker.py``'s fixture
(same skip rule, same isolated redis database, same reset of the Celery pools), which calls the fake HelloAsso
over HTTP and writes the orders into the test database.
"""
import time

import pytest
from django.db import connection
from django.test import override_settings
from django_scopes import scopes_disabled

from pretix.base.models import Order

from pretix_helloasso_bridge.models import FormLink, RemoteObject, SyncReport
from tests.test_celery_worker import REDIS, TASK_TIMEOUT, celery_worker_process  # NOQA: F401 - the fixture

FORM = "Event/soiree-de-gala-2026"
PAYER = {"email": "p@example.org", "firstName": "Paul", "lastName": "Durand", "country": "FRA"}

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql" or not REDIS.startswith("redis://"),
    reason="needs PostgreSQL and redis (the CI job that runs them): the worker is a separate process",
)


def page_url(event, suffix=""):
    return f"/control/event/{event.organizer.slug}/{event.slug}/helloasso/{suffix}"


def wait_for_report(event, count, log):
    """Wait until ``count`` sync reports of ``event`` are finished; returns the newest."""
    deadline = time.monotonic() + TASK_TIMEOUT
    with scopes_disabled():
        while time.monotonic() < deadline:
            done = SyncReport.objects.filter(event=event).exclude(state__in=(SyncReport.QUEUED, SyncReport.RUNNING))
            if done.count() >= count:
                break
            time.sleep(0.2)
        reports = list(SyncReport.objects.filter(event=event).order_by("-pk"))
    tail = "".join(log[-40:])
    assert len(reports) == count and reports[0].state not in (SyncReport.QUEUED, SyncReport.RUNNING), \
        f"the worker did not finish the sync; worker log:\n{tail}"
    assert reports[0].state == SyncReport.SUCCESS, f"{reports[0].error}\nworker log:\n{tail}"
    return reports[0]


def imported(event):
    with scopes_disabled():
        return {ro.remote_id: ro.order for ro in RemoteObject.objects.filter(event=event, kind="order").select_related("order")}


@pytest.mark.django_db(transaction=True)
@override_settings(HAS_CELERY=True)
def test_helloasso_sync_travels_through_redis_to_a_real_worker(ha_event, ha_connected, admin_client, celery_worker_process):  # NOQA: F811
    assert "Soirée de gala 2026" in admin_client.get(page_url(ha_event)).content.decode()  # the form list, read eagerly
    worker_log = celery_worker_process()  # from now on tasks go to redis and the worker

    # linking starts the first (full) import, queued after the link is committed
    r = admin_client.post(page_url(ha_event, "link/"), {"form_ref": FORM})
    assert r.status_code == 302
    first = wait_for_report(ha_event, 1, worker_log)
    assert (first.trigger, first.orders_created, first.orders_cancelled, first.orders_refunded) == ("manual", 3, 1, 1)
    orders = imported(ha_event)
    assert set(orders) == {"128450311", "128450377", "128451002"}
    assert orders["128450311"].status == Order.STATUS_PAID and orders["128450377"].status == Order.STATUS_CANCELED

    # a new HelloAsso order, then "Sync now": the worker imports only what changed
    new = ha_connected.add_order(PAYER, [{"tier": 14587201, "user": ("Paul", "Durand"), "options": [3051871]}])
    r = admin_client.post(page_url(ha_event, "sync/"))
    assert r.status_code == 302
    second = wait_for_report(ha_event, 2, worker_log)
    assert second.orders_created == 1 and second.orders_updated == 0
    orders = imported(ha_event)
    assert len(orders) == 4 and orders[str(new["id"])].status == Order.STATUS_PAID
    with scopes_disabled():
        assert orders[str(new["id"])].positions.count() == 2  # the rate and its option, as an add-on
        link = FormLink.objects.get(event=ha_event)
        assert link.running_since is None and link.last_success and not link.last_error

    log = "".join(worker_log)
    assert log.count("pretix_helloasso_bridge.tasks.sync_event") >= 2 and "succeeded" in log
