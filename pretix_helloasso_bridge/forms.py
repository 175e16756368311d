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


class BilletwebSettingsForm(EncryptedSecretsFormMixin, SettingsForm):
    pretix_helloasso_bridge_billetweb_user = forms.CharField(
        label=_("User"), required=False, max_length=64,
        help_text=_("In Billetweb: Tools > API (www.billetweb.fr/bo/api.php), create a read-only key; it shows a “User” and a “Key”."),
    )
    pretix_helloasso_bridge_billetweb_secret_key = EncryptedSecretField(
        label=_("Key"),
        help_text=_("Stored encrypted. It is never shown again: leave ***** to keep it, or type a new one."),
    )
    pretix_helloasso_bridge_billetweb_url = forms.URLField(
        label=_("Billetweb address"), required=True, assume_scheme="https", validators=[validate_service_url],
        help_text=_("https://www.billetweb.fr unless told otherwise."),
    )

    def clean(self):
        data = super().clean()
        if data.get(config.BILLETWEB_USER) and not data.get(config.BILLETWEB_KEY) and not self.has_error(config.BILLETWEB_KEY):
            self.add_error(config.BILLETWEB_KEY, _("Enter the key that goes with this user."))
        return data


class WeezeventSettingsForm(EncryptedSecretsFormMixin, SettingsForm):
    pretix_helloasso_bridge_weezevent_api_secret_key = EncryptedSecretField(
        label=_("API key"),
        help_text=_("In Weezevent's back office: Tools > API KEY. Stored encrypted; leave ***** to keep it."),
    )
    pretix_helloasso_bridge_weezevent_username = forms.CharField(
        label=_("Login"), required=False, max_length=190,
        help_text=_("The email address of a Weezevent user of your organisation (a user dedicated to pretix is best)."),
    )
    pretix_helloasso_bridge_weezevent_password_secret = EncryptedSecretField(
        label=_("Password"),
        help_text=_("Exchanged once for an access token, which is kept. Stored encrypted; leave ***** to keep it."),
    )
    pretix_helloasso_bridge_weezevent_url = forms.URLField(
        label=_("Weezevent API address"), required=True, assume_scheme="https", validators=[validate_service_url],
        help_text=_("https://api.weezevent.com unless told otherwise."),
    )

    def clean(self):
        data = super().clean()
        if data.get(config.WEEZEVENT_USERNAME):
            for name in (config.WEEZEVENT_API_KEY, config.WEEZEVENT_PASSWORD):
                if not data.get(name) and not self.has_error(name):
                    self.add_error(name, _("This field is required."))
        return data

    def save(self):
        result = super().save()
        # new (or re-entered) credentials: forget the token and a previous refusal, so the next sync logs in once
        self.obj.settings.delete(config.WEEZEVENT_REFUSED)
        self.obj.settings.delete(config.WEEZEVENT_TOKEN)
        return result


class LinkFormForm(forms.Form):
    """Pick the form from the organisation's forms read from the API, or paste its public address."""
    form_ref = forms.ChoiceField(label=_("Form or event to import"), required=False)
    form_url = forms.URLField(
        label=_("or its public address"), required=False, assume_scheme="https",
        help_text=_("For example https://www.helloasso.com/associations/my-association/evenements/my-event"),
    )

    def __init__(self, *args, provider=None, forms_list=(), others=None, **kwargs):
        """``provider`` / ``forms_list``: HelloAsso's; ``others``: {identifier: (provider, forms)} of the other platforms,
        whose choices are ``<identifier>:<ref>``."""
        super().__init__(*args, **kwargs)
        self.provider = provider
        self.others = others or {}
        choices = [(f.ref, f"{f.title} ({f.form_type}, {f.state})" if f.state else f.title) for f in forms_list]
        if self.others and forms_list:
            choices = [("HelloAsso", choices)]
        for identifier, (prov, items) in self.others.items():
            choices.append((str(prov.verbose_name), [
                (f"{identifier}:{f.ref}", f"{f.title} ({f.form_type}, {f.state})" if f.state else f.title) for f in items]))
        self.fields["form_ref"].choices = [("", "---------")] + choices
        if self.others:
            self.fields["form_ref"].label = _("Event or form to import")
        elif forms_list or provider is not None:
            self.fields["form_ref"].label = _("HelloAsso form")
        if provider is None:  # no HelloAsso account: its example address would only confuse
            self.fields["form_url"].help_text = ""

    def clean(self):
        data = super().clean()
        ref = data.get("form_ref")
        if not ref and data.get("form_url"):
            ref = self.provider.parse_form_url(data["form_url"]) if self.provider else None
            for identifier, (prov, _items) in self.others.items():
                if not ref:
                    found = prov.parse_form_url(data["form_url"])
                    ref = f"{identifier}:{found}" if found else None
            if not ref and self.others:
                self.add_error("form_url", _("This is not the address of an event or form of your ticketing platform accounts."))
            elif not ref:
                self.add_error("form_url", _("This is not the address of a form of your HelloAsso organisation."))
        elif not ref and not self.has_error("form_url"):
            raise forms.ValidationError(_("Choose a form or paste its address."))
        data["ref"] = ref
        return data


class LinkOptionsForm(forms.Form):
    send_emails = forms.BooleanField(
        label=_("Send pretix emails to imported buyers"), required=False,
        help_text=_("Off by default: the ticketing platform already sent them their confirmation and tickets."),
    )
    paused = forms.BooleanField(label=_("Pause automatic syncs"), required=False)
