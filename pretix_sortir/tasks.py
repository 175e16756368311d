"""
Background work: sending grants to APRAS, retrying them, and cleaning up.

A grant goes through the core outbox (:mod:`pretix_integrations_core.outbox`): the usage is marked
"grant being sent" and committed before the POST, and APRAS's answer is recorded in a second transaction.
A worker that dies in between leaves the usage "being sent"; the periodic task turns it into "outcome
unknown" for the organiser (resend or mark as done), it never POSTs it a second time by itself.
"""
import logging
from datetime import timedelta

from django.db import transaction
from django.utils.timezone import now
from django.utils.translation import gettext as _
from django_scopes import scope, scopes_disabled

from pretix.base.services.tasks import EventTask
from pretix.celery_app import app

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ExternalServiceError
from pretix_integrations_core.outbox import RETRY, UNKNOWN, Outbox, outcome_of

from .apras import GRANT_BUDGET
from .config import SortirConfig, apras_client
from .holds import release_stale_holds, requires_card
from .lifecycle import log_usage, next_retry, tell_apras_by_hand
from .models import CardUsage

logger = logging.getLogger(__name__)

MAX_GRANT_ATTEMPTS = 8

GRANTS = Outbox(
    CardUsage, pending=CardUsage.GRANT_PENDING, sending=CardUsage.GRANT_SENDING, done=CardUsage.USED,
    failed=CardUsage.GRANT_FAILED, unknown=CardUsage.GRANT_UNKNOWN,
    stale_after=timedelta(seconds=GRANT_BUDGET) + timedelta(minutes=5),
    changed_field="updated", attempts_field="grant_attempts", next_attempt_field="grant_next_attempt",
)

#: reasons a queued grant is not sent after all; all but NOT_PAID free the card when the organiser releases on cancel
ORDER_CANCELED, NOT_PAID, POSITION_CANCELED, NO_CARD_REQUIRED, TESTMODE = (
    "order_canceled", "order_not_paid", "position_canceled", "no_card_required", "testmode")


def why_not_grantable(usage):
    """None if the ticket may still receive its grant, else the reason."""
    order, op = usage.order, usage.order_position
    if order is None or order.status in (order.STATUS_CANCELED, order.STATUS_EXPIRED):
        return ORDER_CANCELED
    if order.testmode:
        return TESTMODE
    if order.status != order.STATUS_PAID:
        return NOT_PAID
    if op is None or op.canceled:
        return POSITION_CANCELED
    if not requires_card(usage.event, op.item_id, op.variation_id) or (op.subevent_id or 0) != usage.date_key:
        return NO_CARD_REQUIRED
    return None


def send_grant(usage):
    """
    Send one grant, at most once. Only the worker that moves the usage from "pending" to "being sent" (a
    committed conditional update) sends it. A POST is never repeated when its outcome is unknown.
    """
    usage = (CardUsage.objects.select_related("order", "order_position", "event__organizer")
             .filter(pk=usage.pk, state=CardUsage.GRANT_PENDING).first())
    if usage is None:
        return
    reason = why_not_grantable(usage)
    if reason:
        _withdraw(usage, reason)
        return
    if not GRANTS.claim(usage.pk):
        return  # another worker has it
    usage.refresh_from_db(fields=["grant_attempts"])
    try:
        key = crypto.decrypt(usage.service_key_secret)
        receipt = apras_client(usage.event.organizer).grant(key)
    except crypto.SecretError as e:
        message = str(e)
        GRANTS.fail(usage.pk, grant_last_error=message, on_move=lambda: log_usage(usage, "grant_failed", error=message))
    except ExternalServiceError as e:
        _record_error(usage, e)
    else:
        grant_id = str(receipt.get("id", ""))[:64]
        GRANTS.complete(usage.pk, grant_id=grant_id, granted_at=now(), grant_last_error="", grant_next_attempt=None,
                        on_move=lambda: log_usage(usage, "used", grant_id=grant_id))
        _report_if_no_longer_grantable(usage.pk)


def _report_if_no_longer_grantable(pk):
    """
    The ticket was cancelled, changed or its card released while its grant was on its way: APRAS has it now and
    has no cancellation endpoint, so the organiser is told to inform APRAS by hand.
    """
    usage = CardUsage.objects.select_related("order", "order_position", "event__organizer").get(pk=pk)
    reason = why_not_grantable(usage)
    if usage.state == CardUsage.RELEASED:
        reason = reason or "released"
    elif reason in (NOT_PAID, TESTMODE):
        reason = None
    if reason and usage.order_id:
        tell_apras_by_hand(usage.order, [usage], reason)


def _record_error(usage, error):
    outcome, message = outcome_of(error, usage.grant_attempts, MAX_GRANT_ATTEMPTS), str(error)
    if outcome == UNKNOWN:
        GRANTS.mark_unknown(usage.pk, grant_last_error=message, on_move=lambda: log_usage(usage, "grant_unknown", error=message))
    elif outcome == RETRY:
        when = next_retry(usage.grant_attempts)
        if error.retry_after:  # APRAS asked us to wait longer than our back-off
            when = max(when, now() + timedelta(seconds=error.retry_after))
        GRANTS.retry_later(usage.pk, when, grant_last_error=message,
                           on_move=lambda: log_usage(usage, "grant_retry", error=message, attempt=usage.grant_attempts))
    else:
        GRANTS.fail(usage.pk, grant_last_error=message, on_move=lambda: log_usage(usage, "grant_failed", error=message))


def _withdraw(usage, reason):
    """A queued grant whose ticket can no longer receive one is not sent; the card follows the organiser's release rule."""
    release = reason != NOT_PAID and reason != TESTMODE and SortirConfig.for_organizer(usage.event.organizer).release_on_cancel
    extra = {"released_from": CardUsage.GRANT_PENDING} if release else {}
    GRANTS.withdraw(usage.pk, CardUsage.RELEASED if release else CardUsage.VALIDATED, grant_next_attempt=None,
                    on_move=lambda: log_usage(usage, "grant_withdrawn", reason=reason), **extra)


@app.task(base=EventTask, acks_late=True)
def send_grants(event, usage_ids):
    for usage in CardUsage.objects.filter(event=event, pk__in=usage_ids, state=CardUsage.GRANT_PENDING):
        send_grant(usage)


def sweep_interrupted_grants():
    """Grants left "being sent" by a worker that died: outcome unknown, for the organiser to check (never resent)."""
    def log_interrupted(pk):
        log_usage(CardUsage.objects.select_related("order", "order_position").get(pk=pk), "grant_interrupted")

    with scopes_disabled():
        return GRANTS.sweep_stale(on_move=log_interrupted, grant_last_error=_(
            "The sending was interrupted before APRAS's answer was recorded."))


@app.task()
def retry_due_grants():
    with scopes_disabled():
        release_stale_holds()
    sweep_interrupted_grants()
    with scopes_disabled():
        due = list(GRANTS.due().select_related("event__organizer")[:500])
    for usage in due:
        if "pretix_sortir" not in usage.event.get_plugins():
            continue
        try:
            with scope(organizer=usage.event.organizer):
                send_grant(usage)
        except Exception:
            # One broken row must not hold up the others. If it broke after its claim it stays "being sent",
            # and the next sweep shows it to the organiser as "outcome unknown".
            logger.exception("Sortir! grant of card usage %s could not be processed", usage.pk)


def resend(usage, user=None):
    """Organiser action: send a failed or unknown grant again (after checking with APRAS)."""
    if GRANTS.requeue(usage.pk, on_move=lambda: log_usage(usage, "grant_resend", user=user)):
        # The organiser asked for it: with a worker it runs there, without one (eager mode) right after this request's commit.
        transaction.on_commit(lambda: send_grants.apply_async(kwargs={"event": usage.event_id, "usage_ids": [usage.pk]}))


def mark_done(usage, user):
    """Organiser action: APRAS confirmed it has the grant (checked outside pretix); no grant id is known."""
    return GRANTS.resolve(usage.pk, grant_last_error="", grant_next_attempt=None,
                          on_move=lambda: log_usage(usage, "grant_marked_done", user=user))


@app.task()
def apply_retention_all():
    """
    Daily enough: usage details N days after the event end, audit entries after their retention.

    ``periodic_task`` is global: this also covers events where the plugin was disabled after it kept data
    (usage rows, or archived counts whose audit entries are still due for deletion).
    """
    from pretix.base.models import Event

    from .models import ArchivedUsageCount
    from .privacy import apply_retention

    with scopes_disabled():
        ids = set(Event.objects.filter(plugins__icontains="pretix_sortir").values_list("pk", flat=True))
        ids |= set(CardUsage.objects.order_by().values_list("event_id", flat=True).distinct())
        ids |= set(ArchivedUsageCount.objects.order_by().values_list("event_id", flat=True).distinct())
        events = list(Event.objects.filter(pk__in=ids).select_related("organizer").order_by("pk"))
    for event in events:
        try:
            with scope(organizer=event.organizer):
                apply_retention(event)
        except Exception:
            # One event's problem must not stop the retention of the others.
            logger.exception("Sortir! retention failed for event %s", event.pk)
