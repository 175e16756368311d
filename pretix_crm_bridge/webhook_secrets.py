"""
The organiser's webhook URLs of the CRM bridge (Invoice Ninja, Mautic, DocuSeal, Calendly): ``/_crm/<system>/<organizer>/<secret>/``.

The secret part is unguessable (32 random bytes), stored encrypted with the core's crypto, shown only on the
connections page (organiser settings permission) and regenerable there; the old URL then stops working at once.
Calendly's URL is not shown nor regenerated there: pretix registers it with Calendly itself (the webhook subscription
made on connect, and made again by the sync when its URL is no longer the current one).
"""
import secrets

from django.conf import settings
from django.urls import reverse

from pretix_integrations_core import crypto

from . import config

KEYS = {"invoiceninja": config.NINJA_HOOK_SECRET, "mautic": config.MAUTIC_HOOK_SECRET, "docuseal": config.DOCUSEAL_HOOK_SECRET,
        "calendly": config.CALENDLY_HOOK_SECRET}
#: the URLs the organiser enters in the other system (and may regenerate); the others pretix registers itself
ENTERED_BY_HAND = ("invoiceninja", "mautic", "docuseal")


def path_secret(organizer, system) -> str:
    """The current secret, or "" (none yet, or not decryptable: then no URL works until it is regenerated)."""
    try:
        return crypto.get_secret(organizer.settings, KEYS[system]) or ""
    except crypto.SecretError:
        return ""


def regenerate(organizer, system, user=None) -> str:
    value = secrets.token_urlsafe(32)
    crypto.set_secret(organizer.settings, KEYS[system], value)
    if user is not None:
        organizer.log_action("pretix_crm_bridge.webhook_url.regenerated", user=user, data={"system": system})
    return value


def ensure_path_secret(organizer, system) -> str:
    return path_secret(organizer, system) or regenerate(organizer, system)


def hook_url(organizer, system) -> str:
    return settings.SITE_URL + reverse(f"plugins:pretix_crm_bridge:hook.{system}", kwargs={
        "organizer_slug": organizer.slug, "secret": ensure_path_secret(organizer, system)})
