"""CSV / Excel export of the card usages, through pretix's export framework, for reconciliation with APRAS."""
from django.utils.translation import gettext_lazy as _, pgettext_lazy

from pretix.base.exporter import ListExporter

from .dashboard import usages_of
from .models import CardUsage


class SortirUsageExporter(ListExporter):
    identifier = "pretix_sortir_usages"
    verbose_name = _("Sortir! card usages")
    category = pgettext_lazy("export_category", "Sortir!")
    description = _("One line per Sortir! card used in this event: order, ticket, last four digits, state and "
                    "the APRAS grant id, to reconcile with the APRAS statements.")

    def iterate_list(self, form_data):
        yield [
            str(_("Order code")), str(_("Ticket")), str(_("Product")), str(_("Date")), str(_("Card (last 4 digits)")),
            str(_("State")), str(_("Card missing")), str(_("APRAS grant id")), str(_("Grant sent at")), str(_("Last change")),
        ]
        qs = usages_of(self.event).exclude(order__isnull=True).order_by("order__code", "order_position__positionid")
        for u in qs:
            op = u.order_position
            yield [
                u.order.code,
                op.positionid if op else "",
                str(op.item.name) + (f" – {op.variation.value}" if op and op.variation else "") if op else "",
                str(u.subevent) if u.subevent else "",
                u.card_last4,
                u.get_state_display(),
                str(_("yes")) if u.state == CardUsage.MISSING else "",
                u.grant_id,
                u.granted_at.astimezone(self.timezone).strftime("%Y-%m-%d %H:%M") if u.granted_at else "",
                u.updated.astimezone(self.timezone).strftime("%Y-%m-%d %H:%M"),
            ]

    def get_filename(self):
        return f"{self.event.organizer.slug}_{self.event.slug}_sortir"
