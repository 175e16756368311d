"""
One path through a real Celery worker on redis, as pretix runs in production (PostgreSQL + redis CI job).

Elsewhere the suite runs Celery eagerly, as pretix's test settings do; this test proves that the tasks
really travel through the broker to a separate worker process and do their work there.
"""
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django_scopes import scopes_disabled

from pretix.celery_app import app

from pretix_sortir.models import CardUsage
from tests.sortir_utils import VALID, checkout

ROOT = Path(__file__).resolve().parent.parent
REDIS = os.environ.get("PRETIX_REDIS_LOCATION", "")
WORKER_READY_TIMEOUT = 90
TASK_TIMEOUT = 60

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql" or not REDIS.startswith("redis://"),
    reason="needs PostgreSQL and redis (the CI job that runs them): the worker is a separate process",
)


def broker_url():
    """The cache's redis server, another database number for the broker (14, or ``TESTS_WORKER_BROKER_DB``)."""
    return re.sub(r"/\d*$", "", REDIS.rstrip("/")) + "/" + os.environ.get("TESTS_WORKER_BROKER_DB", "14")


@pytest.fixture
def celery_worker_process():
    import redis

    broker = broker_url()
    redis.Redis.from_url(broker).flushdb()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.worker_settings", TESTS_WORKER_BROKER=broker,
               TESTS_WORKER_DB_NAME=connection.settings_dict["NAME"], PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pretix.celery_app", "worker", "--pool=solo", "--concurrency=1",
         "-Q", "default", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines, ready = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if " ready." in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(WORKER_READY_TIMEOUT):
        proc.kill()
        pytest.fail("the Celery worker did not start:\n" + "".join(lines[-40:]))

    # Celery reads its configuration from Django's settings object: publish to the broker instead of running eagerly.
    publishing = override_settings(CELERY_ALWAYS_EAGER=False, CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=broker)

    def forget_connections():
        app._pool = None
        app.amqp._producer_pool = None

    def start_publishing():
        publishing.enable()
        forget_connections()
        return lines

    try:
        yield start_publishing
    finally:
        if publishing.wrapped is not None:
            publishing.disable()
        forget_connections()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.django_db(transaction=True)
@override_settings(HAS_CELERY=True)
def test_grant_travels_through_redis_to_a_real_worker(client, paid_sortir_item, sortir_event, fake_apras, celery_worker_process):
    order = checkout(client, sortir_event, paid_sortir_item, [VALID], pay_manually=True)  # pretix's checkout, eagerly
    worker_log = celery_worker_process()  # from now on tasks go to redis and the worker
    with scopes_disabled():
        assert CardUsage.objects.get().state == CardUsage.VALIDATED
        payment = order.payments.create(provider="manual", amount=order.total, state="created")
        payment.confirm(send_mail=False)  # order_paid -> grant queued -> task published after commit

    deadline = time.monotonic() + TASK_TIMEOUT
    with scopes_disabled():
        while time.monotonic() < deadline and CardUsage.objects.get().state != CardUsage.USED:
            time.sleep(0.2)
        usage = CardUsage.objects.get()
    log = "".join(worker_log[-40:])
    assert usage.state == CardUsage.USED, f"the worker did not send the grant; worker log:\n{log}"
    assert "pretix_sortir.tasks.send_grants" in log and "succeeded" in log
    assert len(fake_apras.received("POST", "/api/partners/grant")) == 1
