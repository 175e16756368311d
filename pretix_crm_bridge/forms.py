from django import forms
from django.utils.translation import gettext_lazy as _
from i18nfield.forms import I18nFormField, I18nTextInput

from pretix.base.forms import SettingsForm

from pretix_integrations_core.forms import EncryptedSecretField, EncryptedSecretsFormMixin
from pretix_integrations_core.httpclient import validate_service_url

from . import config

SECRET_HELP = _("Stored encrypted. It is never shown again: leave ***** to keep it, or type a new one.")


class CrmConnectionsForm(EncryptedSecretsFormMixin, SettingsForm):
    """The organiser's connections, one block per system."""

    pretix_crm_bridge_mautic_url = forms.URLField(
        label=_("Mautic URL"), required=False, assume_scheme="https", validators=[validate_service_url],
        help_text=_("The address of your Mautic, for example https://mautic.example.org"),
    )
    pretix_crm_bridge_mautic_auth = forms.ChoiceField(
        label=_("Authentication"), choices=(
            (config.AUTH_BASIC, _("User name and password (HTTP basic authentication enabled in Mautic's API settings)")),
            (config.AUTH_OAUTH2, _("OAuth2 client credentials (an API credential created in Mautic)")),
        ), widget=forms.RadioSelect,
    )
    pretix_crm_bridge_mautic_username = forms.CharField(label=_("Mautic user name"), required=False)
    pretix_crm_bridge_mautic_password_secret = EncryptedSecretField(label=_("Mautic password"), help_text=SECRET_HELP)
    pretix_crm_bridge_mautic_client_id = forms.CharField(label=_("Mautic client ID (public key)"), required=False)
    pretix_crm_bridge_mautic_client_secret = EncryptedSecretField(label=_("Mautic client secret"), help_text=SECRET_HELP)
    pretix_crm_bridge_mautic_webhook_signing_secret = EncryptedSecretField(
        label=_("Mautic webhook secret"),
        help_text=_("Optional, for unsubscriptions coming back from Mautic: the secret of the webhook you create in Mautic "
                    "(Settings → Webhooks), with the URL shown below. Mautic signs each call with it; calls that are not "
                    "signed with it are refused. ") + SECRET_HELP,
    )
    pretix_crm_bridge_invoiceninja_url = forms.URLField(
        label=_("Invoice Ninja URL"), required=False, assume_scheme="https", validators=[validate_service_url],
        help_text=_("https://invoicing.co for the hosted service, or the address of your own Invoice Ninja"),
    )
    pretix_crm_bridge_invoiceninja_api_token_secret = EncryptedSecretField(
        label=_("Invoice Ninja API token"), help_text=_("Created in Invoice Ninja under Settings → Account management → API tokens. ") + SECRET_HELP,
    )
    pretix_crm_bridge_docuseal_url = forms.URLField(
        label=_("DocuSeal API URL"), required=False, assume_scheme="https", validators=[validate_service_url],
        help_text=_("https://api.docuseal.com for DocuSeal's cloud, https://api.docuseal.eu for its EU cloud, or "
                    "https://<your DocuSeal>/api for your own instance."),
    )
    pretix_crm_bridge_docuseal_api_key_secret = EncryptedSecretField(
        label=_("DocuSeal API key"), help_text=_("In DocuSeal under Settings → API. Use the production key, not the testing one. ") + SECRET_HELP,
    )
    pretix_crm_bridge_docuseal_hmac_secret = EncryptedSecretField(
        label=_("DocuSeal webhook signing secret"),
        help_text=_("The secret starting with whsec_ that DocuSeal shows in its webhook settings: each notification is then "
                    "checked against its X-Docuseal-Signature. ") + SECRET_HELP,
    )
    pretix_crm_bridge_docuseal_header_name = forms.CharField(
        label=_("DocuSeal webhook secret header (older versions)"), required=False, max_length=100,
        help_text=_("For DocuSeal versions without signatures: the name of the custom header set in DocuSeal's webhook "
                    "settings, for example X-Webhook-Secret."),
    )
    pretix_crm_bridge_docuseal_header_value_secret = EncryptedSecretField(
        label=_("Value of that header"), help_text=SECRET_HELP,
    )

    def clean(self):
        data = super().clean()
        if data.get(config.DOCUSEAL_URL) and not data.get(config.DOCUSEAL_API_KEY) and not self.has_error(config.DOCUSEAL_API_KEY):
            self.add_error(config.DOCUSEAL_API_KEY, _("Enter the API key that goes with this URL."))
        if bool(data.get(config.DOCUSEAL_HEADER_NAME)) != bool(data.get(config.DOCUSEAL_HEADER_VALUE)) \
                and not self.has_error(config.DOCUSEAL_HEADER_VALUE):
            self.add_error(config.DOCUSEAL_HEADER_VALUE, _("Enter both the header name and its value, or neither."))
        if data.get(config.MAUTIC_URL) and not self.errors:
            if data.get(config.MAUTIC_AUTH) == config.AUTH_OAUTH2:
                needed = (config.MAUTIC_CLIENT_ID, config.MAUTIC_CLIENT_SECRET)
            else:
                needed = (config.MAUTIC_USERNAME, config.MAUTIC_PASSWORD)
            for name in needed:
                if not data.get(name):
                    self.add_error(name, _("This field is required with this authentication."))
        if data.get(config.NINJA_URL) and not data.get(config.NINJA_TOKEN) and not self.has_error(config.NINJA_TOKEN):
            self.add_error(config.NINJA_TOKEN, _("Enter the API token that goes with this URL."))
        return data


def _segments_field(label, help_text):
    return forms.CharField(label=label, required=False, help_text=help_text, validators=[_validate_segments])


def _validate_segments(value):
    parts = [p.strip() for p in str(value or "").replace(";", ",").split(",") if p.strip()]
    if any(not p.isdigit() for p in parts):
        raise forms.ValidationError(_("Enter numbers separated by commas, for example 3, 5."))


def _validate_template(value):
    if value and not str(value).strip().isdigit():
        raise forms.ValidationError(_("Enter the template's number, for example 1000001."))


class CrmEventSettingsForm(SettingsForm):
    pretix_crm_bridge_mautic_enabled = forms.BooleanField(
        label=_("Send buyers to Mautic"), required=False,
        help_text=_("Buyers who agree at checkout become Mautic contacts (name, language, company, address, tags for "
                    "the event and its products). Buyers who do not agree are not sent."),
    )
    pretix_crm_bridge_mautic_segments_placed = _segments_field(
        _("Mautic segments when an order is placed"), _("Segment numbers, separated by commas."))
    pretix_crm_bridge_mautic_segments_paid = _segments_field(
        _("Mautic segments when an order is paid"), _("Segment numbers, separated by commas."))
    pretix_crm_bridge_mautic_campaigns_paid = forms.CharField(
        label=_("Mautic campaigns when an order is paid"), required=False, validators=[_validate_segments],
        help_text=_("Campaign numbers, separated by commas. A contact is added once per order: a later sync of the same "
                    "order does not add it again (which could restart the campaign)."),
    )
    pretix_crm_bridge_mautic_campaigns_welcome = forms.CharField(
        label=_("Mautic welcome campaigns"), required=False, validators=[_validate_segments],
        help_text=_("Campaign numbers, separated by commas, for buyers whose first paid order with this organizer this is."),
    )
    pretix_crm_bridge_mautic_segments_reminder = _segments_field(
        _("Mautic segments for unpaid orders close to expiry"),
        _("Segment numbers, separated by commas. Use them to send a payment reminder from Mautic; the contact leaves them "
          "once the order is paid."))
    pretix_crm_bridge_mautic_reminder_days = forms.IntegerField(
        label=_("Days before expiry"), min_value=1, max_value=60, required=False,
        help_text=_("Unpaid orders expiring within this many days join the reminder segments."),
    )
    pretix_crm_bridge_mautic_event_tag = forms.CharField(
        label=_("Mautic tag for this event"), required=False, max_length=100,
        help_text=_("Leave empty to use pretix-<event short form>. Each product adds a tag of its own, after this one."),
    )
    pretix_crm_bridge_consent_label = I18nFormField(
        label=_("Wording of the checkout checkbox"), required=False, widget=I18nTextInput,
        help_text=_("The checkbox is never ticked in advance. Leave empty for the default wording: “{default}”").format(
            default=config.DEFAULT_CONSENT_LABEL),
    )
    pretix_crm_bridge_invoiceninja_enabled = forms.BooleanField(
        label=_("Send paid orders to Invoice Ninja"), required=False,
        help_text=_("Each buyer becomes a client; each paid order an invoice (numbered after the pretix invoice, or "
                    "the order code) with its payment."),
    )

    pretix_crm_bridge_invoiceninja_send_email = forms.BooleanField(
        label=_("Let Invoice Ninja email the invoice to the buyer"), required=False,
        help_text=_("Invoice Ninja sends it once, when it creates the invoice. pretix's own emails are not affected."),
    )

    pretix_crm_bridge_invoiceninja_invoice_pending = forms.BooleanField(
        label=_("Create the invoice in Invoice Ninja as soon as the order is placed"), required=False,
        help_text=_("For bank transfers you reconcile in Invoice Ninja: the unpaid invoice is there already, and a payment "
                    "you record on it there marks the pretix order paid (set up the webhook in the organiser's CRM "
                    "connections). A cancelled unpaid order's invoice is then cancelled in Invoice Ninja."),
    )

    pretix_crm_bridge_docuseal_enabled = forms.BooleanField(
        label=_("Ask for signatures with DocuSeal"), required=False,
        help_text=_("Each ticket of a product that requires a signature (see the product's settings) gets its own signature "
                    "request. The buyer signs from the order page or from the link in the order email ({placeholder})."
                    ).format(placeholder="{signature_links}"),
    )
    pretix_crm_bridge_docuseal_template = forms.CharField(
        label=_("Default DocuSeal template"), required=False, validators=[_validate_template],
        help_text=_("The number of the DocuSeal template (in its address in DocuSeal) for products that require a signature "
                    "without naming a template of their own."),
    )
    pretix_crm_bridge_docuseal_when = forms.ChoiceField(
        label=_("Send the signature requests"), widget=forms.RadioSelect, required=False, choices=(
            (config.WHEN_PAID, _("when the order is paid")),
            (config.WHEN_PLACED, _("as soon as the order is placed")),
        ),
    )
    pretix_crm_bridge_docuseal_send_email = forms.BooleanField(
        label=_("Let DocuSeal email the signing link too"), required=False,
        help_text=_("pretix's order email and order page already show the link."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        organizer = self.obj.organizer
        if not config.docuseal_configured(organizer):
            self.fields[config.DOCUSEAL_ENABLED].disabled = True
            self.fields[config.DOCUSEAL_ENABLED].help_text = _("First connect DocuSeal in the organiser's CRM connections.")
        if not config.mautic_configured(organizer):
            self.fields[config.MAUTIC_ENABLED].disabled = True
            self.fields[config.MAUTIC_ENABLED].help_text = _("First connect Mautic in the organiser's CRM connections.")
        if not config.invoiceninja_configured(organizer):
            self.fields[config.NINJA_ENABLED].disabled = True
            self.fields[config.NINJA_ENABLED].help_text = _("First connect Invoice Ninja in the organiser's CRM connections.")


class SignatureItemForm(forms.Form):
    """On the product page: this product's tickets each need a DocuSeal signature."""
    title = _("Signature (DocuSeal)")

    requires_signature = forms.BooleanField(
        label=_("Each ticket requires a signature"), required=False,
        help_text=_("A DocuSeal signature request is made for every ticket of this product (if the event asks for signatures "
                    "in its CRM settings)."),
    )
    template_id = forms.IntegerField(
        label=_("DocuSeal template"), required=False, min_value=1,
        help_text=_("The template's number in DocuSeal. Leave empty to use the event's default template."),
    )

    def __init__(self, *args, event, item, **kwargs):
        from .models import SignatureProduct
        self.event, self.item = event, item
        sp = SignatureProduct.objects.filter(item=item).first() if item and item.pk else None
        super().__init__(*args, initial={"requires_signature": sp is not None, "template_id": sp.template_id if sp else None}, **kwargs)

    def save(self):
        from .models import SignatureProduct
        if self.cleaned_data.get("requires_signature"):
            SignatureProduct.objects.update_or_create(item=self.item, defaults={
                "event": self.event, "template_id": self.cleaned_data.get("template_id")})
        else:
            SignatureProduct.objects.filter(item=self.item).delete()
