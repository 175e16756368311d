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


RATE_LIMITED = "rate_limited"
LOGIN_REFUSED = "login_refused"
NO_EVENTS = "no_events"


def check_billetweb(organizer):
    """The Billetweb "Test connection": reads the events the key can see (never the all-events attendees route)."""
    from .config import billetweb_provider
    from .providers.billetweb import BilletwebChallenge

    try:
        provider = billetweb_provider(organizer, scope_suffix="-connection-test")
    except ServiceConfigurationError as e:
        return NOT_CONFIGURED, e.detail or _("Enter the user and the key of your Billetweb API key first.")
    try:
        events = provider.list_forms()
    except BilletwebChallenge as e:
        return RATE_LIMITED, str(e)
    except ServiceRateLimited as e:
        return RATE_LIMITED, str(e)
    except ServiceConfigurationError:
        return WRONG_CREDENTIALS, _(
            "Billetweb refused the user or the key. Copy them again from Billetweb (Tools > API), and check that the key was not revoked.")
    except (ServiceUnavailable, ServiceTimeout) as e:
        return UNAVAILABLE, _("Billetweb is unavailable or could not be reached. Try again in a few minutes. ({error})").format(error=e)
    except Exception as e:  # noqa: B902 - any other answer is "unexpected", with a safe description
        return UNEXPECTED, _("Billetweb answered in an unexpected way: {error}").format(error=str(e) if hasattr(e, "service") else type(e).__name__)
    if not events:
        return NO_EVENTS, _("The key works, but it gives access to no event. In Billetweb (Tools > API), check the events the key is "
                            "restricted to.")
    return OK, _("Connection to Billetweb works: {count} events can be imported.").format(count=len(events))


def check_weezevent(organizer):
    """The Weezevent "Test connection": one login at most (never after a refusal), then the list of events."""
    from .config import weezevent_provider
    from .providers.weezevent import WeezeventLoginRefused

    try:
        provider = weezevent_provider(organizer, scope_suffix="-connection-test")
    except ServiceConfigurationError as e:
        return NOT_CONFIGURED, e.detail or _("Enter the API key, the login and the password of your Weezevent account first.")
    try:
        events = provider.list_forms()
    except WeezeventLoginRefused as e:
        return LOGIN_REFUSED, e.detail
    except ServiceRateLimited as e:
        return RATE_LIMITED, e.detail or str(e)
    except ServiceConfigurationError as e:
        return WRONG_CREDENTIALS, e.detail or str(e)
    except (ServiceUnavailable, ServiceTimeout) as e:
        return UNAVAILABLE, _("Weezevent is unavailable or could not be reached. Try again in a few minutes. ({error})").format(error=e)
    except Exception as e:  # noqa: B902 - any other answer is "unexpected", with a safe description
        return UNEXPECTED, _("Weezevent answered in an unexpected way: {error}").format(error=str(e) if hasattr(e, "service") else type(e).__name__)
    if not events:
        return NO_EVENTS, _("The login works, but it gives access to no event.")
    return OK, _("Connection to Weezevent works: {count} events can be imported.").format(count=len(events))
