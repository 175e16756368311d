"""
Where the CRM bridge keeps its settings (hierarkey), and the API clients built from them.

Organiser level: one connection per system (base URL and encrypted credentials). Event level: which systems the
event feeds, and with which options. Keys with ``secret`` in their name are masked in pretix's settings log.
"""
from django.utils.translation import gettext_lazy as _
from i18nfield.strings import LazyI18nString

from pretix.base.settings import settings_hierarkey

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError

PREFIX = "pretix_crm_bridge_"

# -- organiser: connections ---------------------------------------------------------------------------
MAUTIC_URL = PREFIX + "mautic_url"
MAUTIC_AUTH = PREFIX + "mautic_auth"  # "basic" or "oauth2"
MAUTIC_USERNAME = PREFIX + "mautic_username"
MAUTIC_PASSWORD = PREFIX + "mautic_password_secret"
MAUTIC_CLIENT_ID = PREFIX + "mautic_client_id"
MAUTIC_CLIENT_SECRET = PREFIX + "mautic_client_secret"
NINJA_URL = PREFIX + "invoiceninja_url"
NINJA_TOKEN = PREFIX + "invoiceninja_api_token_secret"
DOCUSEAL_URL = PREFIX + "docuseal_url"
DOCUSEAL_API_KEY = PREFIX + "docuseal_api_key_secret"
#: the ``whsec_…`` secret DocuSeal shows in its webhook settings (X-Docuseal-Signature)
DOCUSEAL_HMAC_SECRET = PREFIX + "docuseal_hmac_secret"
#: the older custom header: its name, and its value (encrypted)
DOCUSEAL_HEADER_NAME = PREFIX + "docuseal_header_name"
DOCUSEAL_HEADER_VALUE = PREFIX + "docuseal_header_value_secret"
#: the unguessable part of the organiser's webhook URLs (encrypted; see webhook_secrets.py)
NINJA_HOOK_SECRET = PREFIX + "invoiceninja_hook_path_secret"
MAUTIC_HOOK_SECRET = PREFIX + "mautic_hook_path_secret"
DOCUSEAL_HOOK_SECRET = PREFIX + "docuseal_hook_path_secret"
CALENDLY_HOOK_SECRET = PREFIX + "calendly_hook_path_secret"
#: the secret Mautic signs its webhooks with (``Webhook-Signature``), copied from Mautic by the organiser
MAUTIC_WEBHOOK_SECRET = PREFIX + "mautic_webhook_signing_secret"

AUTH_BASIC = "basic"
AUTH_OAUTH2 = "oauth2"

# -- event: what the event feeds ----------------------------------------------------------------------
MAUTIC_ENABLED = PREFIX + "mautic_enabled"
MAUTIC_SEGMENTS_PLACED = PREFIX + "mautic_segments_placed"
MAUTIC_SEGMENTS_PAID = PREFIX + "mautic_segments_paid"
MAUTIC_CAMPAIGNS_PAID = PREFIX + "mautic_campaigns_paid"
MAUTIC_CAMPAIGNS_WELCOME = PREFIX + "mautic_campaigns_welcome"
MAUTIC_SEGMENTS_REMINDER = PREFIX + "mautic_segments_reminder"
MAUTIC_REMINDER_DAYS = PREFIX + "mautic_reminder_days"
MAUTIC_EVENT_TAG = PREFIX + "mautic_event_tag"
#: extra contact fields, as pretix's PropertyMappingFormSet.to_property_mappings_list() returns them
MAUTIC_FIELD_MAPPINGS = PREFIX + "mautic_field_mappings"
NINJA_ENABLED = PREFIX + "invoiceninja_enabled"
NINJA_SEND_EMAIL = PREFIX + "invoiceninja_send_email"
DOCUSEAL_ENABLED = PREFIX + "docuseal_enabled"
DOCUSEAL_TEMPLATE = PREFIX + "docuseal_template"
DOCUSEAL_WHEN = PREFIX + "docuseal_when"  # "paid" or "placed"
DOCUSEAL_SEND_EMAIL = PREFIX + "docuseal_send_email"
WHEN_PAID = "paid"
WHEN_PLACED = "placed"
#: also create the invoice of a pending order (so a bank transfer can be reconciled in Invoice Ninja)
NINJA_INVOICE_PENDING = PREFIX + "invoiceninja_invoice_pending"
CONSENT_ASK = PREFIX + "consent_ask"
CONSENT_LABEL = PREFIX + "consent_label"

#: the checkout field (contact form) holding the buyer's answer; kept in ``order.meta_info["contact_form_data"]``
CONSENT_FIELD = "pretix_crm_bridge_marketing_consent"

DEFAULT_CONSENT_LABEL = _("Yes, I would like to receive news about the organiser's upcoming events by email.")

for key, default, type_ in (
    (MAUTIC_URL, "", str), (MAUTIC_AUTH, AUTH_BASIC, str), (MAUTIC_USERNAME, "", str), (MAUTIC_PASSWORD, "", str),
    (MAUTIC_CLIENT_ID, "", str), (MAUTIC_CLIENT_SECRET, "", str), (NINJA_URL, "", str), (NINJA_TOKEN, "", str),
    (MAUTIC_ENABLED, "False", bool), (MAUTIC_SEGMENTS_PLACED, "", str), (MAUTIC_SEGMENTS_PAID, "", str), (MAUTIC_CAMPAIGNS_PAID, "", str),
    (MAUTIC_CAMPAIGNS_WELCOME, "", str),
    (MAUTIC_SEGMENTS_REMINDER, "", str), (MAUTIC_REMINDER_DAYS, "2", int),
    (MAUTIC_EVENT_TAG, "", str), (NINJA_ENABLED, "False", bool), (NINJA_SEND_EMAIL, "False", bool), (CONSENT_ASK, "True", bool),
    (DOCUSEAL_URL, "", str), (DOCUSEAL_API_KEY, "", str), (DOCUSEAL_HMAC_SECRET, "", str), (DOCUSEAL_HEADER_NAME, "", str),
    (DOCUSEAL_HEADER_VALUE, "", str), (DOCUSEAL_HOOK_SECRET, "", str), (CALENDLY_HOOK_SECRET, "", str),
    (DOCUSEAL_ENABLED, "False", bool), (DOCUSEAL_TEMPLATE, "", str), (DOCUSEAL_WHEN, WHEN_PAID, str), (DOCUSEAL_SEND_EMAIL, "False", bool),
    (NINJA_HOOK_SECRET, "", str), (MAUTIC_HOOK_SECRET, "", str), (MAUTIC_WEBHOOK_SECRET, "", str), (NINJA_INVOICE_PENDING, "False", bool),
):
    settings_hierarkey.add_default(key, default, type_)
settings_hierarkey.add_default(CONSENT_LABEL, None, LazyI18nString)
settings_hierarkey.add_default(MAUTIC_FIELD_MAPPINGS, "[]", list)


def consent_label(event):
    label = event.settings.get(CONSENT_LABEL, as_type=LazyI18nString)
    return str(label) if label and str(label).strip() else str(DEFAULT_CONSENT_LABEL)


def segment_ids(value) -> list:
    """``"3, 5"`` -> ``[3, 5]`` (invalid parts are dropped; the form refuses them)."""
    return [int(p) for p in str(value or "").replace(";", ",").split(",") if p.strip().isdigit()]


def event_tag(event) -> str:
    return event.settings.get(MAUTIC_EVENT_TAG) or f"pretix-{event.slug}"


def secret(organizer, key, service):
    """A decrypted secret, or ServiceConfigurationError with a message the organiser understands."""
    try:
        return crypto.get_secret(organizer.settings, key)
    except crypto.SecretError as e:
        raise ServiceConfigurationError(service, str(_("configuration")), detail=str(e)) from None


def mautic_client(organizer, scope_suffix="", **kwargs):
    from .clients import SERVICE_MAUTIC, MauticClient
    s = organizer.settings
    url = s.get(MAUTIC_URL) or ""
    auth = s.get(MAUTIC_AUTH) or AUTH_BASIC
    if auth == AUTH_OAUTH2:
        user, password = s.get(MAUTIC_CLIENT_ID) or "", secret(organizer, MAUTIC_CLIENT_SECRET, SERVICE_MAUTIC)
    else:
        user, password = s.get(MAUTIC_USERNAME) or "", secret(organizer, MAUTIC_PASSWORD, SERVICE_MAUTIC)
    if not url or not user or not password:
        raise ServiceConfigurationError(SERVICE_MAUTIC, str(_("configuration")), detail=str(
            _("The Mautic connection is not set up: enter its URL and credentials in the organiser's CRM connections.")))
    return MauticClient(url, auth, user, password, scope=f"org{organizer.pk}{scope_suffix}", **kwargs)


def invoiceninja_client(organizer, scope_suffix="", **kwargs):
    from .clients import SERVICE_NINJA, InvoiceNinjaClient
    url = organizer.settings.get(NINJA_URL) or ""
    token = secret(organizer, NINJA_TOKEN, SERVICE_NINJA)
    if not url or not token:
        raise ServiceConfigurationError(SERVICE_NINJA, str(_("configuration")), detail=str(
            _("The Invoice Ninja connection is not set up: enter its URL and API token in the organiser's CRM connections.")))
    return InvoiceNinjaClient(url, token, scope=f"org{organizer.pk}{scope_suffix}", **kwargs)


def mautic_configured(organizer) -> bool:
    return bool(organizer.settings.get(MAUTIC_URL))


def invoiceninja_configured(organizer) -> bool:
    return bool(organizer.settings.get(NINJA_URL))


def docuseal_client(organizer, scope_suffix="", **kwargs):
    from .docuseal_client import SERVICE_DOCUSEAL, DocuSealClient
    url = organizer.settings.get(DOCUSEAL_URL) or ""
    key = secret(organizer, DOCUSEAL_API_KEY, SERVICE_DOCUSEAL)
    if not url or not key:
        raise ServiceConfigurationError(SERVICE_DOCUSEAL, str(_("configuration")), detail=str(
            _("The DocuSeal connection is not set up: enter its API URL and API key in the organiser's CRM connections.")))
    return DocuSealClient(url, key, scope=f"org{organizer.pk}{scope_suffix}", **kwargs)


def docuseal_configured(organizer) -> bool:
    return bool(organizer.settings.get(DOCUSEAL_URL))
