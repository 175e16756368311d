"""The organiser's "Test connection" button: authenticate, read the organisation, and say clearly what is wrong."""
from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.errors import ServiceConfigurationError, ServiceNotFound, ServiceRateLimited, ServiceTimeout, ServiceUnavailable
from pretix_integrations_core.oauth import OAuthClientRefused

from .config import provider_for

OK = "ok"
NOT_CONFIGURED = "not_configured"
WRONG_CREDENTIALS = "wrong_credentials"
UNKNOWN_ORGANIZATION = "unknown_organization"
UNAVAILABLE = "unavailable"
UNEXPECTED = "unexpected"


def check_connection(organizer):
    """Returns (outcome, message)."""
    try:
        provider = provider_for(organizer, scope_suffix="-connection-test")
    except ServiceConfigurationError as e:
        return NOT_CONFIGURED, e.detail or _("Enter the client ID, the client secret and the organisation first.")
    try:
        org = provider.test_connection()
    except OAuthClientRefused:
        return WRONG_CREDENTIALS, _("HelloAsso refused the client ID or the client secret. Copy them again from your HelloAsso "
                                    "back office (My account > Integrations and API), and check the API address (production or sandbox).")
    except ServiceNotFound:
        return UNKNOWN_ORGANIZATION, _("The credentials work, but HelloAsso does not know the organisation “{slug}”.").format(
            slug=provider.org)
    except ServiceConfigurationError as e:
        if e.status == 403:
            return WRONG_CREDENTIALS, _("HelloAsso accepted the credentials but they give no access to the organisation “{slug}”.").format(
                slug=provider.org)
        return WRONG_CREDENTIALS, str(e)
    except (ServiceUnavailable, ServiceTimeout, ServiceRateLimited) as e:
        return UNAVAILABLE, _("HelloAsso is unavailable or could not be reached. Try again in a few minutes. ({error})").format(error=e)
    except Exception as e:  # noqa: B902 - any other answer is "unexpected", with a safe description
        return UNEXPECTED, _("HelloAsso answered in an unexpected way: {error}").format(error=str(e) if hasattr(e, "service") else type(e).__name__)
    return OK, _("Connection to HelloAsso works: organisation “{name}”.").format(name=org.get("name") or provider.org)
