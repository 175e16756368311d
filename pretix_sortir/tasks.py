"""Background work: sending grants to APRAS, retrying them, and cleaning up."""
import logging

from django.db import transaction
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from pretix.base.services.tasks import EventTask
from pretix.celery_app import app

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ExternalServiceError, ServiceConfigurationError

from .config import apras_client
from .holds import release_stale_holds
from .lifecycle import log_usage, next_retry
from .models import CardUsage

logger = logging.getLogger(__name__)

MAX_GRANT_ATTEMPTS = 8


def send_grant(usage):
    """
    Send one grant. The usage row is locked so two workers never send the same grant. A POST is never
    repeated when its outcome is unknown: the usage is flagged for the organiser instead.
    """
    with transaction.atomic():
        usage = CardUsage.objects.select_for_update(of=("self",)).select_related("order", "order_position", "event__organizer").get(pk=usage.pk)
        if usage.state != CardUsage.GRANT_PENDING:
            return
        usage.grant_attempts += 1
        try:
            key = crypto.decrypt(usage.service_key_secret)
            receipt = apras_client(usage.event.organizer).grant(key)
        except crypto.SecretError as e:
            usage.state, usage.grant_last_error = CardUsage.GRANT_FAILED, str(e)
            log_usage(usage, "grant_failed", error=str(e))
        except ExternalServiceError as e:
            usage.grant_last_error = str(e)
            if e.outcome_unknown:
                usage.state = CardUsage.GRANT_UNKNOWN
                log_usage(usage, "grant_unknown", error=str(e))
            elif (e.transient or isinstance(e, ServiceConfigurationError)) and usage.grant_attempts < MAX_GRANT_ATTEMPTS:
                usage.grant_next_attempt = next_retry(usage.grant_attempts)
                log_usage(usage, "grant_retry", error=str(e), attempt=usage.grant_attempts)
            else:
                usage.state = CardUsage.GRANT_FAILED
                log_usage(usage, "grant_failed", error=str(e))
        else:
            usage.state = CardUsage.USED
            usage.grant_id = str(receipt.get("id", ""))[:64]
            usage.granted_at = now()
            usage.grant_last_error = ""
            log_usage(usage, "used", grant_id=usage.grant_id)
        usage.save()


@app.task(base=EventTask, acks_late=True)
def send_grants(event, usage_ids):
    for usage in CardUsage.objects.filter(event=event, pk__in=usage_ids, state=CardUsage.GRANT_PENDING):
        send_grant(usage)


@app.task()
def retry_due_grants():
    with scopes_disabled():
        release_stale_holds()
        due = list(CardUsage.objects.filter(state=CardUsage.GRANT_PENDING, grant_next_attempt__lte=now())
                   .select_related("event__organizer").order_by("grant_next_attempt")[:500])
    for usage in due:
        if "pretix_sortir" not in usage.event.get_plugins():
            continue
        with scope(organizer=usage.event.organizer):
            send_grant(usage)


def resend(usage, user=None):
    """Organiser action: send a failed or unknown grant again (after checking with APRAS)."""
    CardUsage.objects.filter(pk=usage.pk, state__in=(CardUsage.GRANT_FAILED, CardUsage.GRANT_UNKNOWN)).update(
        state=CardUsage.GRANT_PENDING, grant_next_attempt=now(), grant_attempts=0,
    )
    usage.refresh_from_db()
    log_usage(usage, "grant_resend", user=user)
    # The organiser asked for it: with a worker it runs there, without one (eager mode) right after this request's commit.
    transaction.on_commit(lambda: send_grants.apply_async(kwargs={"event": usage.event_id, "usage_ids": [usage.pk]}))


@app.task()
def apply_retention_all():
    """Daily enough: usage details N days after the event end, audit entries after their retention."""
    from pretix.base.models import Event

    from .privacy import apply_retention

    with scopes_disabled():
        events = list(Event.objects.filter(plugins__icontains="pretix_sortir").select_related("organizer"))
    for event in events:
        with scope(organizer=event.organizer):
            apply_retention(event)
