"""
Prospects are personal data.

- :func:`delete_prospect`: one prospect and its meetings (the "Delete" button of the prospect page);
- :func:`purge_lost`: the retention rule, run periodically: prospects *lost* for more than the organiser's retention
  months are deleted;
- :class:`ProspectShredder`: pretix's data shredder is event-level, so it removes the prospects whose email is a
  buyer's email of the event being shredded (the organiser-level removal is the Delete button and the retention).

The log keeps that a prospect was deleted, without the person's data.
"""
import json

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _
from django_scopes import scope, scopes_disabled

from pretix.base.models import LogEntry
from pretix.base.shredder import BaseDataShredder

from .models import CalendlyConnection, Prospect


def delete_prospect(prospect, user=None, reason="manual"):
    with transaction.atomic():
        organizer = prospect.organizer
        pk = prospect.pk
        # the prospect's own log entries hold names and emails: keep the entries, drop their data
        LogEntry.objects.filter(content_type__model="prospect", content_type__app_label="pretix_crm_bridge", object_id=pk).update(
            data=json.dumps({"_shredded": True}), shredded=True)
        prospect.delete()
        organizer.log_action("pretix_crm_bridge.prospect.deleted", user=user, data={"prospect": pk, "reason": reason})


def purge_lost(at=None):
    """Delete lost prospects older than each organiser's retention; returns how many."""
    at = at or now()
    count = 0
    with scopes_disabled():
        conns = list(CalendlyConnection.objects.filter(retention_months__gt=0).select_related("organizer"))
    for conn in conns:
        limit = at - relativedelta(months=conn.retention_months)
        with scope(organizer=conn.organizer):
            for p in Prospect.objects.filter(organizer=conn.organizer, status=Prospect.LOST, status_changed__lt=limit):
                delete_prospect(p, reason="retention")
                count += 1
    return count


class ProspectShredder(BaseDataShredder):
    identifier = "pretix_crm_bridge_prospects"
    verbose_name = _("CRM prospects of this event's buyers")
    description = _("Deletes the prospects (from Calendly bookings) whose email is the email of an order of this event, with "
                    "their meetings and notes.")

    def _prospects(self):
        emails = {e.lower() for e in self.event.orders.exclude(email__isnull=True).exclude(email="").values_list("email", flat=True)}
        return Prospect.objects.annotate(email_lower=Lower("email")).filter(
            Q(order__event=self.event) | Q(email_lower__in=emails), organizer=self.event.organizer).distinct()

    def generate_files(self):
        rows = [{"name": p.name, "email": p.email, "phone": p.phone, "status": p.status, "notes": p.notes,
                 "meetings": [{"event_type": m.event_type_name, "start": m.start.isoformat() if m.start else None, "status": m.status}
                              for m in p.meetings.all()]} for p in self._prospects()]
        yield "crm-prospects.json", "application/json", json.dumps(rows, indent=2)

    def shred_data(self, progress_callback=None):
        for p in list(self._prospects()):
            delete_prospect(p, reason="shredder")
