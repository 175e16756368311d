"""Organiser-level HelloAsso settings (hierarkey, defaults registered below) and the provider built from them."""
from pretix.base.settings import settings_hierarkey

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError

from .providers import billetweb
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

BILLETWEB_USER = PREFIX + "billetweb_user"
BILLETWEB_KEY = PREFIX + "billetweb_secret_key"  # encrypted
BILLETWEB_URL = PREFIX + "billetweb_url"
settings_hierarkey.add_default(BILLETWEB_USER, "", str)
settings_hierarkey.add_default(BILLETWEB_KEY, "", str)
settings_hierarkey.add_default(BILLETWEB_URL, billetweb.PRODUCTION_URL, str)


def provider_names():
    from .providers.billetweb import BilletwebProvider

    return {"helloasso": HelloAssoProvider.verbose_name, "billetweb": BilletwebProvider.verbose_name}


def provider_class(identifier):
    return {"helloasso": HelloAssoProvider, "billetweb": billetweb.BilletwebProvider}.get(identifier or "helloasso")


def configured_providers(organizer):
    """Identifiers of the platforms this organiser has entered credentials for (HelloAsso first)."""
    s = organizer.settings
    result = []
    if s.get(CLIENT_ID, as_type=str) and s.get(ORGANIZATION, as_type=str):
        result.append("helloasso")
    if s.get(BILLETWEB_USER, as_type=str) and s.get(BILLETWEB_KEY, as_type=str):
        result.append("billetweb")
    return result


def provider_for(organizer, provider="helloasso", *, scope_suffix=""):
    """The provider (HelloAsso by default) of this organiser; ServiceConfigurationError when something is missing or unreadable."""
    if provider == "billetweb":
        return billetweb_provider(organizer, scope_suffix=scope_suffix)
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


def billetweb_provider(organizer, *, scope_suffix=""):
    s = organizer.settings
    try:
        key = crypto.get_secret(s, BILLETWEB_KEY)
    except crypto.SecretError as e:
        raise ServiceConfigurationError(billetweb.SERVICE, "configuration", detail=str(e)) from None
    user = s.get(BILLETWEB_USER, as_type=str)
    if not user or not key:
        raise ServiceConfigurationError(billetweb.SERVICE, "configuration")
    return billetweb.BilletwebProvider(base_url=s.get(BILLETWEB_URL, as_type=str) or billetweb.PRODUCTION_URL, user=user, key=key,
                                       scope=f"organizer-{organizer.pk}{scope_suffix}")
