from django import forms
from django.utils.translation import gettext_lazy as _

from pretix.base.forms import SettingsForm

from pretix_integrations_core.forms import EncryptedSecretField, EncryptedSecretsFormMixin
from pretix_integrations_core.httpclient import validate_service_url

from . import config
from .providers.helloasso import PRODUCTION_URL, SANDBOX_URL


class HelloAssoOrganizerSettingsForm(EncryptedSecretsFormMixin, SettingsForm):
    pretix_helloasso_bridge_client_id = forms.CharField(
        label=_("Client ID"), required=False, max_length=255,
        help_text=_("In your HelloAsso back office: My account > Integrations and API."),
    )
    pretix_helloasso_bridge_client_secret = EncryptedSecretField(
        label=_("Client secret"),
        help_text=_("Stored encrypted. It is never shown again: leave ***** to keep it, or type a new one."),
    )
    pretix_helloasso_bridge_organization_slug = forms.SlugField(
        label=_("Organisation"), required=False, max_length=190,
        help_text=_("The name of your association in its HelloAsso address: www.helloasso.com/associations/<b>this-part</b>"),
    )
    pretix_helloasso_bridge_base_url = forms.URLField(
        label=_("HelloAsso API address"), required=True, assume_scheme="https", validators=[validate_service_url],
        help_text=_("{production} for real sales, {sandbox} for HelloAsso's test environment (with its own keys).").format(
            production=PRODUCTION_URL, sandbox=SANDBOX_URL),
    )

    def clean(self):
        data = super().clean()
        if data.get(config.CLIENT_ID) and not data.get(config.CLIENT_SECRET) and not self.has_error(config.CLIENT_SECRET):
            self.add_error(config.CLIENT_SECRET, _("Enter the client secret that goes with this client ID."))
        return data
