"""The organiser-level Sortir! configuration, read from hierarkey settings (defaults registered below)."""
from dataclasses import dataclass

from pretix.base.settings import settings_hierarkey

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ServiceConfigurationError

from .apras import SERVICE, AprasClient

PREFIX = "pretix_sortir_"
API_URL = PREFIX + "api_url"
API_TOKEN = PREFIX + "api_token_secret"  # "secret" in the name: pretix masks it in settings logs
TIMEOUT = PREFIX + "timeout"
PREFILL_NAMES = PREFIX + "prefill_names"
RELEASE_ON_CANCEL = PREFIX + "release_on_cancel"
USAGE_RETENTION_DAYS = PREFIX + "usage_retention_days"
AUDIT_RETENTION_DAYS = PREFIX + "audit_retention_days"

settings_hierarkey.add_default(API_URL, "", str)
settings_hierarkey.add_default(API_TOKEN, "", str)
settings_hierarkey.add_default(TIMEOUT, "2", int)
# Off: the APRAS partner API documents no holder name; only some APRAS accounts return one.
settings_hierarkey.add_default(PREFILL_NAMES, "False", bool)
settings_hierarkey.add_default(RELEASE_ON_CANCEL, "True", bool)
settings_hierarkey.add_default(USAGE_RETENTION_DAYS, "90", int)
settings_hierarkey.add_default(AUDIT_RETENTION_DAYS, "365", int)


@dataclass
class SortirConfig:
    organizer_id: int
    api_url: str
    timeout: int
    prefill_names: bool
    release_on_cancel: bool
    usage_retention_days: int
    audit_retention_days: int

    @classmethod
    def for_organizer(cls, organizer):
        s = organizer.settings
        return cls(
            organizer_id=organizer.pk,
            api_url=s.get(API_URL, as_type=str) or "",
            timeout=min(10, max(1, s.get(TIMEOUT, as_type=int))),
            prefill_names=s.get(PREFILL_NAMES, as_type=bool),
            release_on_cancel=s.get(RELEASE_ON_CANCEL, as_type=bool),
            usage_retention_days=s.get(USAGE_RETENTION_DAYS, as_type=int),
            audit_retention_days=s.get(AUDIT_RETENTION_DAYS, as_type=int),
        )


def apras_client(organizer) -> AprasClient:
    """An APRAS client for this organiser; ServiceConfigurationError if the URL or token is missing or unreadable."""
    cfg = SortirConfig.for_organizer(organizer)
    try:
        token = crypto.get_secret(organizer.settings, API_TOKEN)
    except crypto.SecretError as e:
        raise ServiceConfigurationError(SERVICE, "configuration", detail=str(e)) from None
    if not cfg.api_url or not token:
        raise ServiceConfigurationError(SERVICE, "configuration")
    return AprasClient(cfg.api_url, token, scope=breaker_scope(organizer), timeout=cfg.timeout)


def breaker_scope(organizer) -> str:
    """The circuit breaker of the buyers' card checks and grants is one per organiser."""
    return f"organizer-{organizer.pk}"
