"""Organiser-level HelloAsso settings (hierarkey, defaults registered below) and the provider built from them."""
from pretix.base.settings import settings_hierarkey

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError

from .providers import billetweb, weezevent
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


WEEZEVENT_API_KEY = PREFIX + "weezevent_api_secret_key"  # encrypted
WEEZEVENT_USERNAME = PREFIX + "weezevent_username"
WEEZEVENT_PASSWORD = PREFIX + "weezevent_password_secret"  # encrypted
WEEZEVENT_URL = PREFIX + "weezevent_url"
#: the access token obtained with the login (encrypted), and the digest of credentials Weezevent refused
WEEZEVENT_TOKEN = PREFIX + "weezevent_token_secret"
WEEZEVENT_REFUSED = PREFIX + "weezevent_login_refused"
for _name in (WEEZEVENT_API_KEY, WEEZEVENT_USERNAME, WEEZEVENT_PASSWORD, WEEZEVENT_TOKEN, WEEZEVENT_REFUSED):
    settings_hierarkey.add_default(_name, "", str)
settings_hierarkey.add_default(WEEZEVENT_URL, weezevent.PRODUCTION_URL, str)


def provider_names():
    from .providers.billetweb import BilletwebProvider

    return {"helloasso": HelloAssoProvider.verbose_name, "billetweb": BilletwebProvider.verbose_name,
            "weezevent": weezevent.WeezeventProvider.verbose_name}


def platform_name(identifier, default=None):
    """The display name of the platform ``identifier``; ``default`` (a neutral "Ticketing platform") when unknown."""
    from django.utils.translation import gettext_lazy as _

    name = provider_names().get(identifier or "")
    return name if name is not None else (default if default is not None else _("Ticketing platform"))


def event_platform(event):
    """The identifier of the platform ``event`` is linked to, or None."""
    from django_scopes import scopes_disabled

    from .models import FormLink

    if event is None:
        return None
    with scopes_disabled():
        return FormLink.objects.filter(event=event).values_list("provider", flat=True).first()


def provider_class(identifier):
    return {"helloasso": HelloAssoProvider, "billetweb": billetweb.BilletwebProvider,
            "weezevent": weezevent.WeezeventProvider}.get(identifier or "helloasso")


def configured_providers(organizer):
    """Identifiers of the platforms this organiser has entered credentials for (HelloAsso first)."""
    s = organizer.settings
    result = []
    if s.get(CLIENT_ID, as_type=str) and s.get(ORGANIZATION, as_type=str):
        result.append("helloasso")
    if s.get(BILLETWEB_USER, as_type=str) and s.get(BILLETWEB_KEY, as_type=str):
        result.append("billetweb")
    if s.get(WEEZEVENT_USERNAME, as_type=str) and s.get(WEEZEVENT_API_KEY, as_type=str):
        result.append("weezevent")
    return result


def provider_for(organizer, provider="helloasso", *, scope_suffix=""):
    """The provider (HelloAsso by default) of this organiser; ServiceConfigurationError when something is missing or unreadable."""
    if provider == "billetweb":
        return billetweb_provider(organizer, scope_suffix=scope_suffix)
    if provider == "weezevent":
        return weezevent_provider(organizer, scope_suffix=scope_suffix)
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


class WeezeventTokenStore:
    """The organiser's Weezevent access token (encrypted) and whether Weezevent refused the current credentials."""

    def __init__(self, organizer, api_key, username, password):
        self.settings = organizer.settings
        self.digest = crypto.keyed_digest(f"{api_key}\n{username}\n{password}", "weezevent-login")

    def token(self):
        try:
            return crypto.get_secret(self.settings, WEEZEVENT_TOKEN) or ""
        except crypto.SecretError:
            return ""

    def set_token(self, token):
        crypto.set_secret(self.settings, WEEZEVENT_TOKEN, token or "")

    def refused(self):
        return self.settings.get(WEEZEVENT_REFUSED, as_type=str) == self.digest

    def set_refused(self, banned=False):
        self.settings.set(WEEZEVENT_REFUSED, self.digest)
        self.set_token("")


def weezevent_provider(organizer, *, scope_suffix=""):
    s = organizer.settings
    try:
        api_key, password = crypto.get_secret(s, WEEZEVENT_API_KEY), crypto.get_secret(s, WEEZEVENT_PASSWORD)
    except crypto.SecretError as e:
        raise ServiceConfigurationError(weezevent.SERVICE, "configuration", detail=str(e)) from None
    username = s.get(WEEZEVENT_USERNAME, as_type=str)
    if not api_key or not username or not password:
        raise ServiceConfigurationError(weezevent.SERVICE, "configuration")
    return weezevent.WeezeventProvider(base_url=s.get(WEEZEVENT_URL, as_type=str) or weezevent.PRODUCTION_URL, api_key=api_key,
                                       username=username, password=password, scope=f"organizer-{organizer.pk}{scope_suffix}",
                                       tokens=WeezeventTokenStore(organizer, api_key, username, password))
