"""Background work: the sync of one organiser (Sync now, periodic) and the upsert of one verified webhook delivery."""
import logging

from django.db import transaction
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.services.tasks import OrganizerTask
from pretix.celery_app import app

from pretix_integrations_core.errors import ExternalServiceError, ServiceRateLimited

from .models import CalendlyConnection
from .sync import SyncAlreadyRunning, run_sync, upsert_invitee

logger = logging.getLogger(__name__)


@app.task(base=OrganizerTask, bind=True, acks_late=True, max_retries=5)
def sync_organizer(self, organizer):
    conn = CalendlyConnection.objects.filter(organizer=organizer).first()
    if not conn or not conn.organization_uri:
        return
    try:
        return run_sync(conn)
    except SyncAlreadyRunning:
        logger.info("Calendly sync of organiser %s already running", organizer.pk)
    except ServiceRateLimited as e:
        # Calendly said when its window resets (X-RateLimit-Reset): come back then, not earlier
        if not app.conf.task_always_eager:
            raise self.retry(countdown=max(1, int(e.retry_after or 60)))
    except ExternalServiceError as e:
        logger.warning("Calendly sync of organiser %s failed: %s", organizer.pk, e)


def start_sync(organizer):
    transaction.on_commit(lambda: sync_organizer.apply_async(kwargs={"organizer": organizer.pk}))


@app.task(base=OrganizerTask, acks_late=True)
def process_delivery(organizer, connection, payload):
    event = payload.get("scheduled_event") if isinstance(payload.get("scheduled_event"), dict) else {}
    upsert_invitee(organizer, payload, event)


def due_connections(at=None):
    at = at or now()
    with scopes_disabled():
        for conn in CalendlyConnection.objects.exclude(organization_uri="").filter(running_since__isnull=True).select_related("organizer"):
            if "pretix_crm_bridge" not in conn.organizer.get_plugins():
                continue
            # a failed sync counts as an attempt: a broken connection is retried at the same pace, not at every run
            last = max((d for d in (conn.last_sync, conn.last_error_at) if d), default=None)
            if last is None or (at - last).total_seconds() >= max(5, conn.sync_interval) * 60 - 30:
                yield conn


def run_periodic():
    for conn in list(due_connections()):
        with scope(organizer=conn.organizer):
            sync_organizer.apply_async(kwargs={"organizer": conn.organizer_id})
