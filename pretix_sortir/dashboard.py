"""Queries behind the usage dashboard, the exporter and the REST API: one place for filters and counts."""
from django import forms
from django.db.models import Count, Q
from django.utils.translation import gettext_lazy as _

from .models import ArchivedUsageCount, CardUsage


class UsageFilterForm(forms.Form):
    state = forms.ChoiceField(label=_("State"), required=False, choices=(("", _("All states")),) + CardUsage.STATES)
    query = forms.CharField(label=_("Search"), required=False, max_length=40,
                            widget=forms.TextInput(attrs={"placeholder": _("Order code or last 4 digits")}))

    def filter(self, qs):
        if not self.is_valid():
            return qs
        if self.cleaned_data.get("state"):
            qs = qs.filter(state=self.cleaned_data["state"])
        q = (self.cleaned_data.get("query") or "").strip()
        if q:
            cond = Q(order__code__icontains=q)
            digits = "".join(c for c in q if c.isdigit())
            if len(digits) == 4:
                cond |= Q(card_last4=digits)
            qs = qs.filter(cond)
        return qs


def usages_of(event):
    return CardUsage.objects.filter(event=event).select_related("order", "order_position__item", "order_position__variation", "subevent")


def state_counts(event):
    counts = dict(CardUsage.objects.filter(event=event).values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    for archived in ArchivedUsageCount.objects.filter(event=event):
        counts[archived.state] = counts.get(archived.state, 0) + archived.count
    return [(key, label, counts.get(key, 0)) for key, label in CardUsage.STATES]


def missing_count(event):
    """Sortir! tickets of pending or paid orders that still have no card (created outside the checkout)."""
    return CardUsage.objects.filter(event=event, state=CardUsage.MISSING, order__status__in=("n", "p")).count()
