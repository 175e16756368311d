"""
Personal data: retention (usage details deleted N days after the event ends, keeping anonymous counts;
Sortir! audit entries deleted after their own retention) and pretix's data shredder.
"""
import json
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, F
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from pretix.base.models import LogEntry
from pretix.base.shredder import BaseDataShredder

from pretix_integrations_core.events import event_end

from .config import SortirConfig
from .models import ArchivedUsageCount, CardUsage
from .notifications import ACTION_UNRESOLVED_ARCHIVED

LOG_ACTION_PREFIXES = ("pretix_sortir.usage.", "pretix_sortir.apras.", "pretix_sortir.retention.")
#: grants that are still on their way: their usages are kept until they settle
UNSETTLED = (CardUsage.GRANT_PENDING, CardUsage.GRANT_SENDING)
#: grants that needed the organiser and never got an answer: archived, but never silently
UNRESOLVED = (CardUsage.GRANT_FAILED, CardUsage.GRANT_UNKNOWN)


def archive_usages(event):
    """Replace the event's usage rows by anonymous counts per state."""
    with transaction.atomic():
        qs = CardUsage.objects.filter(event=event)
        for row in qs.values("state").annotate(n=Count("id")):
            obj, created = ArchivedUsageCount.objects.get_or_create(event=event, state=row["state"], defaults={"count": row["n"]})
            if not created:
                ArchivedUsageCount.objects.filter(pk=obj.pk).update(count=F("count") + row["n"])
        return qs.delete()[0]


def _report_unresolved(event):
    """Failed or unknown grants are about to be archived: say so in the event log (and so notify the organiser)."""
    unresolved = list(CardUsage.objects.filter(event=event, state__in=UNRESOLVED).select_related("order")
                      .order_by("order__code", "pk"))
    if not unresolved:
        return
    codes = sorted({u.order.code for u in unresolved if u.order_id})
    event.log_action(ACTION_UNRESOLVED_ARCHIVED, data={
        "failed": sum(1 for u in unresolved if u.state == CardUsage.GRANT_FAILED),
        "unknown": sum(1 for u in unresolved if u.state == CardUsage.GRANT_UNKNOWN),
        "orders": codes[:50],
    })


def _sortir_log_entries(event):
    qs = LogEntry.objects.filter(event=event)
    q = None
    for prefix in LOG_ACTION_PREFIXES:
        cond = qs.filter(action_type__startswith=prefix)
        q = cond if q is None else q | cond
    return q


def apply_retention(event, at=None):
    """Returns (usages archived, log entries deleted) for one event."""
    at = at or now()
    cfg = SortirConfig.for_organizer(event.organizer)
    archived = 0
    # For a series, the end of its last date: dates still to come keep their cards. Usages still waiting
    # for their grant are kept until they settle.
    if event_end(event) + timedelta(days=cfg.usage_retention_days) < at and not CardUsage.objects.filter(
            event=event, state__in=UNSETTLED).exists():
        with transaction.atomic():
            _report_unresolved(event)
            archived = archive_usages(event)
    deleted = _sortir_log_entries(event).filter(datetime__lt=at - timedelta(days=cfg.audit_retention_days)).delete()[0]
    return archived, deleted


class SortirDataShredder(BaseDataShredder):
    verbose_name = _("Sortir! card usages")
    identifier = "pretix_sortir_usages"
    description = _("Removes the Sortir! card usages of this event (only anonymous counts per state are kept) and the "
                    "Sortir! entries of the order logs.")

    def generate_files(self):
        yield "sortir-usages.json", "application/json", json.dumps([
            {"order": u.order.code if u.order else None, "position": u.order_position.positionid if u.order_position else None,
             "card_last4": u.card_last4, "state": u.state, "grant_id": u.grant_id}
            for u in CardUsage.objects.filter(event=self.event).select_related("order", "order_position")
        ], indent=4)

    def shred_data(self, progress_callback=None):
        archive_usages(self.event)
        _sortir_log_entries(self.event).delete()
