from django import forms
from django.utils.translation import gettext_lazy as _

from pretix.base.forms import SettingsForm

from pretix_integrations_core.forms import EncryptedSecretField, EncryptedSecretsFormMixin
from pretix_integrations_core.httpclient import validate_service_url

from . import config


class SortirOrganizerSettingsForm(EncryptedSecretsFormMixin, SettingsForm):
    pretix_sortir_api_url = forms.URLField(
        label=_("APRAS API URL"), required=False, assume_scheme="https", validators=[validate_service_url],
        help_text=_("The address APRAS gave you, for example https://api.example.org"),
    )
    pretix_sortir_api_token_secret = EncryptedSecretField(
        label=_("APRAS API token"),
        help_text=_("Stored encrypted. It is never shown again: leave ***** to keep it, or type a new one."),
    )
    pretix_sortir_timeout = forms.IntegerField(
        label=_("Timeout"), min_value=1, max_value=10,
        help_text=_("Seconds a buyer waits at most for a card check, retries included (1 to 10)."),
    )
    pretix_sortir_prefill_names = forms.BooleanField(
        label=_("Pre-fill attendee names from APRAS"), required=False,
        help_text=_("When APRAS returns the card holder's name, it is used as the ticket's attendee name."),
    )
    pretix_sortir_release_on_cancel = forms.BooleanField(
        label=_("Release the card when an order is cancelled"), required=False,
        help_text=_("The card can then be used again for the same event (cancelled, expired, denied or refunded orders)."),
    )
    pretix_sortir_usage_retention_days = forms.IntegerField(
        label=_("Keep usage details for"), min_value=1, max_value=3650,
        help_text=_("Days after the end of the event. Afterwards only anonymous counts are kept."),
    )
    pretix_sortir_audit_retention_days = forms.IntegerField(
        label=_("Keep audit entries for"), min_value=1, max_value=3650,
        help_text=_("Days. Log entries of the Sortir! plugin older than this are deleted."),
    )

    def clean(self):
        data = super().clean()
        if data.get(config.API_URL) and not data.get(config.API_TOKEN) and not self.has_error(config.API_TOKEN):
            self.add_error(config.API_TOKEN, _("Enter the API token that goes with this URL."))
        return data
