"""
The Calendly OAuth application of this pretix, set once by the administrator (never by each organiser)::

    [pretix_crm_bridge]
    calendly_client_id = …
    calendly_client_secret = …
    ; optional: the app-level webhook signing key of the OAuth app (developer portal)
    calendly_webhook_signing_key = …
    ; optional, for a sandbox or the offline demo
    calendly_api_url = https://api.calendly.com
    calendly_auth_url = https://auth.calendly.com

Each value can also be set in pretix's global settings (``GlobalSettingsObject``), the file wins. Secrets stored there
are encrypted with the core's keys (:func:`set_global`).
"""
from django.conf import settings

from pretix_integrations_core import crypto

SECTION = "pretix_crm_bridge"
GLOBAL_PREFIX = "pretix_crm_bridge_"
SECRET_OPTIONS = ("calendly_client_secret", "calendly_webhook_signing_key")
DEFAULTS = {"calendly_api_url": "https://api.calendly.com", "calendly_auth_url": "https://auth.calendly.com"}


def _global_settings():
    from pretix.base.settings import GlobalSettingsObject
    return GlobalSettingsObject().settings


def get(option: str) -> str:
    cfg = getattr(settings, "CONFIG_FILE", None)
    value = cfg.get(SECTION, option, fallback="") if cfg is not None else ""
    if not value:
        gs = _global_settings()
        try:
            value = crypto.get_secret(gs, GLOBAL_PREFIX + option) if option in SECRET_OPTIONS else gs.get(GLOBAL_PREFIX + option, as_type=str)
        except crypto.SecretError:
            value = ""
    return (value or DEFAULTS.get(option, "")).strip()


def set_global(option: str, value: str):
    """Store a value in pretix's global settings (secrets encrypted); used by tests, the demo and the admin."""
    gs = _global_settings()
    if option in SECRET_OPTIONS:
        crypto.set_secret(gs, GLOBAL_PREFIX + option, value)
    elif value:
        gs.set(GLOBAL_PREFIX + option, value)
    else:
        del gs[GLOBAL_PREFIX + option]


def oauth_configured() -> bool:
    return bool(get("calendly_client_id") and get("calendly_client_secret"))
