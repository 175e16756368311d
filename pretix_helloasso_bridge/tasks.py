"""Background work: a sync per event (Sync now, periodic, REST API) and one order re-fetched per webhook."""
import logging
import time
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.services.tasks import EventTask
from pretix.celery_app import app

from pretix_integrations_core.errors import ExternalServiceError

from .models import FormLink, SyncReport
from .sync import Sync, SyncAlreadyRunning, run_sync

logger = logging.getLogger(__name__)

#: default interval between periodic syncs, and the shorter one on the event day and the day before
INTERVAL = timedelta(hours=1)
INTERVAL_NEAR_EVENT = timedelta(minutes=10)


@app.task(base=EventTask, bind=True, acks_late=True)
def sync_event(self, event, trigger="manual", full=False, report_id=None):
    report = SyncReport.objects.filter(pk=report_id, event=event).first() if report_id else None
    try:
        run_sync(event, trigger=trigger, full=full, report=report)
    except SyncAlreadyRunning:
        if report:
            report.delete()
        logger.info("HelloAsso sync of event %s already running", event.pk)
    except ExternalServiceError as e:
        logger.warning("HelloAsso sync of event %s failed: %s", event.pk, e)
    except Exception:  # noqa: B902 - recorded on the report and the link by the engine
        logger.exception("HelloAsso sync of event %s failed", event.pk)


def start_sync(event, *, trigger="manual", full=False):
    """Enqueue a sync after the current transaction commits; returns the report the task will fill in."""
    report = SyncReport.objects.create(event=event, trigger=trigger, full=full, state=SyncReport.QUEUED)
    kwargs = {"event": event.pk, "trigger": trigger, "full": full, "report_id": report.pk}
    transaction.on_commit(lambda: sync_event.apply_async(kwargs=kwargs))
    return report


@app.task(base=EventTask, bind=True, acks_late=True)
def import_order(self, event, remote_id):
    """
    A webhook said this order changed: re-fetch it from the API (the payload is never trusted) and import it.

    Nothing is skipped on the strength of a notification: every accepted one re-fetches the order, so a duplicate, late
    or out-of-order notification (a Payment before its Order, an old state after a newer one) only re-applies the API's
    current state, which the fingerprint makes a no-op. The only shortcuts are the inbound view's acknowledgement of a
    byte-identical re-delivery (the first one was re-fetched) and, without Celery, dropping a notification while a sync
    runs; neither loses a change: the order's new version was not applied, so the next sync lists it as changed.
    """
    from .config import provider_for

    link = FormLink.objects.filter(event=event).first()
    if not link or link.status == FormLink.PAUSED:
        return
    sync = Sync(link, provider_for(event.organizer, link.provider), trigger="webhook")
    started = time.monotonic()
    try:
        sync.claim()
    except SyncAlreadyRunning:
        # the running sync may already be past this order: try again shortly (inline, the next sync catches it)
        if app.conf.task_always_eager:
            return
        raise self.retry(countdown=30, max_retries=20)
    sync.report = SyncReport.objects.create(event=event, trigger="webhook")
    try:
        sync.sync_catalog()
        sync.apply_one(remote_id)
    except Exception as e:  # noqa: B902 - recorded on the report and the link
        sync.finish(started, error=e)
        logger.warning("HelloAsso order %s of event %s could not be imported: %s", remote_id, event.pk, type(e).__name__)
    else:
        sync.finish(started)
    finally:
        sync.release()


def due_links(at=None):
    """Links whose periodic sync is due: hourly, every 10 minutes on the event day and the day before."""
    at = at or now()
    result = []
    with scopes_disabled():
        qs = FormLink.objects.filter(~Q(status=FormLink.PAUSED), running_since__isnull=True).select_related("event", "event__organizer")
        for link in qs:
            if "pretix_helloasso_bridge" not in link.event.get_plugins():
                continue
            start = link.event.date_from
            near = start - timedelta(days=1) - timedelta(hours=12) <= at <= (link.event.date_to or start) + timedelta(hours=12)
            interval = INTERVAL_NEAR_EVENT if near else INTERVAL
            last = link.event.helloasso_reports.filter(trigger="periodic").order_by("-started").values_list("started", flat=True).first()
            if last is None or at - last >= interval - timedelta(seconds=30):
                result.append(link)
    return result


def full_read_due(link, at=None):
    """Platforms whose incremental listing misses deletions (Billetweb, Weezevent) are read in full now and then."""
    from .config import provider_class

    every = getattr(provider_class(link.provider), "full_read_every", None)
    if not every:
        return False
    last = link.event.helloasso_reports.filter(full=True, state=SyncReport.SUCCESS).order_by("-started").values_list("started", flat=True).first()
    return last is None or (at or now()) - last >= every


def run_periodic():
    for link in due_links():
        with scope(organizer=link.event.organizer):
            start_sync(link.event, trigger="periodic", full=full_read_due(link))
