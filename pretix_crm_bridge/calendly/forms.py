from django import forms
from django.utils.translation import gettext_lazy as _

from .models import CalendlyConnection, Prospect


class PersonalTokenForm(forms.Form):
    token = forms.CharField(label=_("Personal access token"), widget=forms.PasswordInput(render_value=False), max_length=2000,
                            help_text=_("For a single-user setup: create one in Calendly under Integrations → API and webhooks."))


class ConnectionOptionsForm(forms.ModelForm):
    class Meta:
        model = CalendlyConnection
        fields = ("sync_interval", "retention_months", "consent_question", "mautic_segments_created", "mautic_segments_converted")
        help_texts = {
            "sync_interval": _("How often bookings are read from Calendly, also when webhooks deliver them at once."),
            "retention_months": _("Prospects marked as lost are deleted this many months after the change. 0 keeps them."),
            "consent_question": _("The exact text of a booking question in Calendly (e.g. a checkbox “Send me news about your "
                                  "events”). Only people who answer it are sent to Mautic; leave it empty and nobody is."),
            "mautic_segments_created": _("Mautic segment ids, separated by commas, for new prospects who consented."),
            "mautic_segments_converted": _("Mautic segment ids for consenting prospects who bought a ticket."),
        }

    def _clean_segments(self, name):
        value = self.cleaned_data[name]
        parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        if any(not p.isdigit() for p in parts):
            raise forms.ValidationError(_("Enter segment ids (numbers) separated by commas."))
        return ", ".join(parts)

    def clean_mautic_segments_created(self):
        return self._clean_segments("mautic_segments_created")

    def clean_mautic_segments_converted(self):
        return self._clean_segments("mautic_segments_converted")

    def clean_sync_interval(self):
        value = self.cleaned_data["sync_interval"]
        if value < 5 or value > 24 * 60:
            raise forms.ValidationError(_("Choose between 5 minutes and 24 hours."))
        return value


class ProspectForm(forms.ModelForm):
    note = forms.CharField(label=_("Add a note"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    class Meta:
        model = Prospect
        fields = ("status", "phone", "marketing_consent")


class ProspectFilterForm(forms.Form):
    query = forms.CharField(label=_("Search"), required=False,
                            widget=forms.TextInput(attrs={"placeholder": _("Name or email"), "autofocus": "autofocus"}))
    status = forms.ChoiceField(label=_("Status"), required=False, choices=(("", _("All")),) + Prospect.STATUSES)

    def filter(self, qs):
        from django.db.models import Q

        if not self.is_valid():
            return qs
        q, status = self.cleaned_data.get("query"), self.cleaned_data.get("status")
        if q:
            qs = qs.filter(Q(name__icontains=q) | Q(email__icontains=q) | Q(phone__icontains=q))
        if status:
            qs = qs.filter(status=status)
        return qs
