"""The prospect list as an organiser-level pretix export (CSV, Excel and the other list formats of ListExporter)."""
from collections import OrderedDict

from django import forms
from django.utils.translation import gettext_lazy as _, pgettext_lazy

from pretix.base.exporter import ListExporter, OrganizerLevelExportMixin

from .models import Prospect


class ProspectExporter(OrganizerLevelExportMixin, ListExporter):
    identifier = "pretix_crm_bridge_prospects"
    verbose_name = _("CRM prospects (Calendly)")
    category = pgettext_lazy("export_category", "Customers")
    description = _("Download the prospects from Calendly bookings with their status and meetings.")

    @classmethod
    def get_required_organizer_permission(cls):
        return "organizer.crm_prospects:read"

    @property
    def additional_form_fields(self):
        return OrderedDict([
            ("status", forms.MultipleChoiceField(label=_("Status"), choices=Prospect.STATUSES, required=False,
                                                 widget=forms.CheckboxSelectMultiple, help_text=_("All when none is selected."))),
        ])

    def iterate_list(self, form_data):
        qs = Prospect.objects.filter(organizer=self.organizer).prefetch_related("meetings").select_related("order").order_by("created", "pk")
        if form_data.get("status"):
            qs = qs.filter(status__in=form_data["status"])
        yield [str(_("Name")), str(_("Email")), str(_("Phone")), str(_("Status")), str(_("Source")), str(_("Created")),
               str(_("Meetings")), str(_("Next or last meeting")), str(_("Order")), str(_("Notes"))]
        statuses = dict(Prospect.STATUSES)
        for p in qs:
            meetings = list(p.meetings.all())
            last = max((m for m in meetings if m.start), key=lambda m: m.start, default=None)
            yield [p.name, p.email, p.phone, str(statuses.get(p.status, p.status)), p.source, p.created.isoformat(),
                   len(meetings), f"{last.event_type_name} {last.start.isoformat()}" if last else "",
                   p.order.code if p.order else "", p.notes]

    def get_filename(self):
        return f"{self.organizer.slug}_prospects"
