"""Organiser-level HelloAsso settings (hierarkey, defaults registered below) and the provider built from them."""
from pretix.base.settings import settings_hierarkey

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError

from .providers.helloasso import PRODUCTION_URL, SERVICE, HelloAssoProvider

PREFIX = "pretix_helloasso_bridge_"
CLIENT_ID = PREFIX + "client_id"
CLIENT_SECRET = PREFIX + "client_secret"  # "secret" in the name: pretix masks it in settings logs
ORGANIZATION = PREFIX + "organization_slug"
BASE_URL = PREFIX + "base_url"

settings_hierarkey.add_default(CLIENT_ID, "", str)
settings_hierarkey.add_default(CLIENT_SECRET, "", str)
settings_hierarkey.add_default(ORGANIZATION, "", str)
settings_hierarkey.add_default(BASE_URL, PRODUCTION_URL, str)


def provider_for(organizer, *, scope_suffix="") -> HelloAssoProvider:
    """The HelloAsso provider of this organiser; ServiceConfigurationError when something is missing or unreadable."""
    s = organizer.settings
    try:
        secret = crypto.get_secret(s, CLIENT_SECRET)
    except crypto.SecretError as e:
        raise ServiceConfigurationError(SERVICE, "configuration", detail=str(e)) from None
    client_id, org = s.get(CLIENT_ID, as_type=str), s.get(ORGANIZATION, as_type=str)
    if not client_id or not secret or not org:
        raise ServiceConfigurationError(SERVICE, "configuration")
    return HelloAssoProvider(base_url=s.get(BASE_URL, as_type=str) or PRODUCTION_URL, client_id=client_id, client_secret=secret,
                             organization_slug=org, scope=f"organizer-{organizer.pk}{scope_suffix}")
