"""
A grant reaches APRAS at most once and is never lost: the outbox (pretix_integrations_core.outbox) as
Sortir! uses it, through real orders, the periodic task, the control panel and HTTP to the fake APRAS.
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client, override_settings
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled
from freezegun import freeze_time

from pretix.base.models import LogEntry
from pretix.base.services.orders import cancel_order

from pretix_sortir.models import CardUsage
from pretix_sortir.signals import periodic
from pretix_sortir.tasks import GRANTS, send_grant
from tests.sortir_utils import VALID, checkout
from tests.test_sortir_control import user_with
from tests.test_sortir_grants import grants, pay, usage

#: later than the grant's request budget plus the sweep's margin
AFTER_STALE = GRANTS.stale_after + timedelta(minutes=1)
ON_POSTGRESQL = pytest.mark.skipif(connection.vendor != "postgresql",
                                   reason="a second process or parallel writers need PostgreSQL (the SQLite test database lives in memory)")


def logged(order, action):
    with scopes_disabled():
        return LogEntry.objects.filter(action_type=f"pretix_sortir.usage.{action}", object_id=order.pk)


@pytest.fixture
def pending_grant(client, paid_sortir_item, sortir_event, fake_apras):
    """A paid order whose grant is queued (no celery worker: the periodic task sends it)."""
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    pay(order)
    assert usage().state == CardUsage.GRANT_PENDING and grants(fake_apras) == []
    return order


# -- HTTP 5xx: an answer, retried with back-off --------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("status", [500, 502, 504])
def test_grant_answered_with_5xx_is_retried_later(pending_grant, fake_apras, status):
    fake_apras.fail_next(path="/grant", status=status, body={"message": "incident"})
    periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.GRANT_PENDING and u.grant_attempts == 1 and u.grant_next_attempt > now()
    assert str(status) in u.grant_last_error and len(grants(fake_apras)) == 1
    assert logged(pending_grant, "grant_retry").exists()
    with freeze_time(now() + timedelta(minutes=2)):
        periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.USED and u.grant_id and len(grants(fake_apras)) == 2


@pytest.mark.django_db
def test_grant_retry_honours_a_longer_retry_after(pending_grant, fake_apras):
    fake_apras.fail_next(path="/grant", status=503, headers={"Retry-After": "7200"})
    periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.GRANT_PENDING and u.grant_next_attempt > now() + timedelta(minutes=119)
    with freeze_time(now() + timedelta(minutes=30)):
        periodic(sender=None)
    assert len(grants(fake_apras)) == 1


# -- the "being sent" state is committed before the POST ------------------------------------------------

@pytest.mark.django_db
def test_grant_is_never_claimed_inside_a_transaction(pending_grant, fake_apras):
    """The claim is a durable transaction: inside another one it refuses, and nothing is sent."""
    with scopes_disabled(), pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        send_grant(usage())
    assert usage().state == CardUsage.GRANT_PENDING and grants(fake_apras) == []


@pytest.mark.django_db
def test_only_one_claim_wins(pending_grant):
    pk = usage().pk
    assert GRANTS.claim(pk) is True
    assert GRANTS.claim(pk) is False
    u = usage()
    assert u.state == CardUsage.GRANT_SENDING and u.grant_attempts == 1


def _fail_updates_of_rows_being_sent():
    """A real database failure (a trigger) on every write that would record a grant's outcome."""
    table = CardUsage._meta.db_table
    with connection.cursor() as c:
        if connection.vendor == "postgresql":
            c.execute("CREATE FUNCTION sortir_test_db_down() RETURNS trigger AS $$ BEGIN "
                      "RAISE EXCEPTION 'simulated database failure'; END; $$ LANGUAGE plpgsql")
            c.execute(f"CREATE TRIGGER sortir_test_db_down BEFORE UPDATE ON {table} FOR EACH ROW "
                      "WHEN (OLD.state = 'grant_sending') EXECUTE FUNCTION sortir_test_db_down()")
        else:
            c.execute(f"CREATE TRIGGER sortir_test_db_down BEFORE UPDATE ON {table} WHEN OLD.state = 'grant_sending' "
                      "BEGIN SELECT RAISE(ABORT, 'simulated database failure'); END")


def _database_back():
    with connection.cursor() as c:
        c.execute(f"DROP TRIGGER sortir_test_db_down{' ON ' + CardUsage._meta.db_table if connection.vendor == 'postgresql' else ''}")


@pytest.mark.django_db
def test_database_failure_after_the_post_never_leads_to_a_second_post(pending_grant, fake_apras):
    _fail_updates_of_rows_being_sent()
    with scopes_disabled(), pytest.raises(DatabaseError):
        send_grant(usage())  # APRAS recorded the grant, but its answer cannot be written
    assert len(grants(fake_apras)) == 1 and usage().state == CardUsage.GRANT_SENDING
    periodic(sender=None)  # the periodic task carries on with other rows, and this one is not due
    _database_back()
    periodic(sender=None)
    assert len(grants(fake_apras)) == 1 and usage().state == CardUsage.GRANT_SENDING  # not stale yet
    with freeze_time(now() + AFTER_STALE):
        periodic(sender=None)
    u = usage()
    assert u.state == CardUsage.GRANT_UNKNOWN and u.grant_last_error
    assert logged(pending_grant, "grant_interrupted").count() == 1
    with freeze_time(now() + timedelta(days=1)):
        periodic(sender=None)
    assert len(grants(fake_apras)) == 1 and usage().state == CardUsage.GRANT_UNKNOWN


@ON_POSTGRESQL
@pytest.mark.django_db(transaction=True)
def test_worker_killed_between_post_and_commit(client, paid_sortir_item, sortir_event, fake_apras):
    """A real worker process claims the grant and POSTs it, then is killed while APRAS is answering."""
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    with override_settings(HAS_CELERY=False):  # with redis configured, the grant would be sent (eagerly) at payment
        pay(order)
    assert usage().state == CardUsage.GRANT_PENDING
    fake_apras.fail_next(path="/grant", delay=20)
    script = textwrap.dedent("""
        import django
        django.setup()
        from pretix_sortir.tasks import retry_due_grants
        retry_due_grants()
        print("FINISHED")
    """)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", PRETIX_DATABASE_NAME=connection.settings_dict["NAME"])
    worker = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=os.path.dirname(os.path.dirname(__file__)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not grants(fake_apras) and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(grants(fake_apras)) == 1, worker.communicate(timeout=5) if worker.poll() is not None else "no POST"
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        out, err = worker.communicate(timeout=30)
    assert "FINISHED" not in out
    assert usage().state == CardUsage.GRANT_SENDING  # committed by the worker before its POST

    periodic(sender=None)
    assert usage().state == CardUsage.GRANT_SENDING and len(grants(fake_apras)) == 1
    with freeze_time(now() + AFTER_STALE):
        periodic(sender=None)
    assert usage().state == CardUsage.GRANT_UNKNOWN and len(grants(fake_apras)) == 1
    assert logged(order, "grant_interrupted").exists()


@ON_POSTGRESQL
@pytest.mark.django_db(transaction=True)
def test_parallel_workers_send_a_grant_once(client, paid_sortir_item, sortir_event, fake_apras):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)
    pay(order)
    fake_apras.fail_next(path="/grant", delay=0.5)
    barrier = threading.Barrier(6)

    def worker():
        try:
            with scope(organizer=sortir_event.organizer):
                u = CardUsage.objects.get(order=order)
                barrier.wait()
                send_grant(u)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(grants(fake_apras)) == 1 and usage().state == CardUsage.USED and usage().grant_attempts == 1


# -- a queued grant is sent only while the ticket can still receive it ----------------------------------

@pytest.mark.django_db
def test_retry_after_cancellation_does_not_send(pending_grant, fake_apras, organizer):
    organizer.settings.set("pretix_sortir_release_on_cancel", False)
    fake_apras.fail_next(path="/grant", status=503)
    periodic(sender=None)
    assert usage().state == CardUsage.GRANT_PENDING and len(grants(fake_apras)) == 1
    with scopes_disabled():
        cancel_order(pending_grant.pk)
    with freeze_time(now() + timedelta(hours=1)):
        periodic(sender=None)
    assert len(grants(fake_apras)) == 1
    assert usage().state == CardUsage.VALIDATED  # the organiser keeps cards of cancelled orders
    entry = logged(pending_grant, "grant_withdrawn").get()
    assert entry.parsed_data["reason"] == "order_canceled"


@pytest.mark.django_db
def test_product_no_longer_requiring_a_card_releases_it_without_sending(pending_grant, fake_apras, admin_client, sortir_event):
    r = admin_client.post(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/products/", {}, follow=True)
    assert r.status_code == 200
    periodic(sender=None)
    assert grants(fake_apras) == [] and usage().state == CardUsage.RELEASED
    assert logged(pending_grant, "grant_withdrawn").get().parsed_data["reason"] == "no_card_required"


# -- the organiser resolves an unknown outcome ---------------------------------------------------------

def usage_url(event, u, action):
    return f"/control/event/{event.organizer.slug}/{event.slug}/sortir/usages/{u.pk}/{action}/"


@pytest.fixture
def unknown_grant(pending_grant, fake_apras):
    fake_apras.fail_next(path="/grant", drop=True)
    periodic(sender=None)
    assert usage().state == CardUsage.GRANT_UNKNOWN and len(grants(fake_apras)) == 1
    return pending_grant


@pytest.mark.django_db
def test_mark_as_done_from_the_order_page(admin_client, admin_user, unknown_grant, sortir_event, fake_apras):
    order_page = f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/orders/{unknown_grant.code}/"
    page = admin_client.get(order_page)
    assert b"Mark as done" in page.content and b"Send grant again" in page.content
    r = admin_client.post(usage_url(sortir_event, usage(), "done"), {"next": order_page})
    assert r.status_code == 302 and r["Location"] == order_page
    u = usage()
    assert u.state == CardUsage.USED and u.grant_id == "" and u.grant_last_error == ""
    entry = logged(unknown_grant, "grant_marked_done").get()
    assert entry.user == admin_user
    periodic(sender=None)
    assert len(grants(fake_apras)) == 1  # nothing sent
    assert b"Mark as done" not in admin_client.get(order_page).content
    assert admin_client.post(usage_url(sortir_event, u, "done")).status_code == 404  # only failed or unknown grants


@pytest.mark.django_db
def test_mark_as_done_from_the_usage_dashboard(admin_client, unknown_grant, sortir_event):
    page = admin_client.get(f"/control/event/{sortir_event.organizer.slug}/{sortir_event.slug}/sortir/usages/")
    assert usage_url(sortir_event, usage(), "done").encode() in page.content
    r = admin_client.post(usage_url(sortir_event, usage(), "done"), follow=True)
    assert b"marked as done" in r.content and usage().state == CardUsage.USED


@pytest.mark.django_db
def test_mark_as_done_needs_write_permission_post_and_csrf(client, organizer, unknown_grant, sortir_event):
    user_with(organizer, sortir_event, "reader@example.org", **{"event.orders:read": True})
    assert client.login(email="reader@example.org", password="pw")
    page = client.get(f"/control/event/{organizer.slug}/{sortir_event.slug}/orders/{unknown_grant.code}/")
    assert page.status_code == 200 and b"Mark as done" not in page.content
    assert client.post(usage_url(sortir_event, usage(), "done")).status_code == 403
    client.logout()

    user_with(organizer, sortir_event, "writer@example.org", **{"event.orders:read": True, "event.orders:write": True})
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(email="writer@example.org", password="pw")
    assert browser.get(usage_url(sortir_event, usage(), "done")).status_code == 405
    assert browser.post(usage_url(sortir_event, usage(), "done")).status_code == 403  # no CSRF token
    assert usage().state == CardUsage.GRANT_UNKNOWN
