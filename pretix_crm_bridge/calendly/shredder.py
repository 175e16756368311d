"""
Prospects are personal data.

- :func:`delete_prospect`: one prospect and its meetings (the "Delete" button of the prospect page);
- :func:`purge_lost`: the retention rule, run periodically: prospects *lost* for more than the organiser's retention
  months are deleted;
- :class:`ProspectShredder`: pretix's data shredder is event-level, so it removes the prospects whose email is a
  buyer's or an attendee's email of the event being shredded (the organiser-level removal is the Delete button and
  the retention).

The log keeps that a prospect was deleted, without the person's data.
"""
import json
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _
from django_scopes import scope, scopes_disabled

from pretix.base.models import LogEntry, OrderPosition
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
    """
    The prospects of the people of this event: whose email is a buyer's or an attendee's email of the event, or who
    converted with one of its orders.

    pretix runs the selected shredders one after the other in the order it received them, and its "Emails" shredder
    may run first (the order of the checkboxes depends on the language): once it ran, the orders no longer say who
    bought. So the export step remembers which prospects it wrote into the download (their ids only, in the event's
    settings) and the shred step removes those, with any that match by then.
    """
    identifier = "pretix_crm_bridge_prospects"
    verbose_name = _("CRM prospects of this event's buyers")
    description = _("Deletes the prospects (from Calendly bookings) whose email is the email of an order or an attendee of this "
                    "event, with their meetings and notes.")
    #: the ids of the prospects in the last download, and when it was made
    PENDING_KEY = "pretix_crm_bridge_shredder_prospects"
    PENDING_MAX_AGE = timedelta(days=1)

    def _emails(self):
        orders = self.event.orders.exclude(email__isnull=True).exclude(email="").values_list("email", flat=True)
        attendees = OrderPosition.all.filter(order__event=self.event).exclude(attendee_email__isnull=True).exclude(
            attendee_email="").values_list("attendee_email", flat=True)
        return {e.strip().lower() for e in list(orders) + list(attendees)}

    def _prospects(self):
        return Prospect.objects.annotate(email_lower=Lower("email")).filter(
            Q(order__event=self.event) | Q(email_lower__in=self._emails()), organizer=self.event.organizer).distinct()

    def _pending_ids(self):
        try:
            pending = json.loads(self.event.settings.get(self.PENDING_KEY, as_type=str, default="") or "{}")
            if now() - datetime.fromisoformat(pending["at"]) <= self.PENDING_MAX_AGE:
                return [int(i) for i in pending["ids"]]
        except (ValueError, KeyError, TypeError):
            pass
        return []

    def generate_files(self):
        prospects = list(self._prospects().prefetch_related("meetings").order_by("pk"))
        self.event.settings.set(self.PENDING_KEY, json.dumps({"at": now().isoformat(), "ids": [p.pk for p in prospects]}))
        rows = [{"name": p.name, "email": p.email, "phone": p.phone, "status": p.status, "source": p.source, "notes": p.notes,
                 "answers": p.answers, "created": p.created.isoformat(),
                 "meetings": [{"event_type": m.event_type_name, "start": m.start.isoformat() if m.start else None,
                               "end": m.end.isoformat() if m.end else None, "location": m.location, "join_url": m.join_url,
                               "status": m.status} for m in p.meetings.all()]} for p in prospects]
        yield "crm-prospects.json", "application/json", json.dumps(rows, indent=2)

    def shred_data(self, progress_callback=None):
        ids = set(self._prospects().values_list("pk", flat=True)) | set(self._pending_ids())
        for p in list(Prospect.objects.filter(organizer=self.event.organizer, pk__in=ids)):
            delete_prospect(p, reason="shredder")
        del self.event.settings[self.PENDING_KEY]
