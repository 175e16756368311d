"""The organiser's "Test connection" button: one probe request, and an answer that says what is wrong."""
from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.breaker import CircuitBreaker
from pretix_integrations_core.errors import ServiceConfigurationError, ServiceNotFound, ServiceRateLimited, ServiceTimeout, ServiceUnavailable

from .apras import SERVICE, AprasClient
from .config import apras_client, breaker_scope

PROBE_CARD = "0000000000"

OK = "ok"
REFUSED = "refused"
UNREACHABLE = "unreachable"
UNEXPECTED = "unexpected"
NOT_CONFIGURED = "not_configured"


def check_connection(organizer):
    """Returns (outcome, message)."""
    try:
        client = apras_client(organizer)
    except ServiceConfigurationError as e:
        return NOT_CONFIGURED, e.detail or _("Enter the APRAS API URL and token first.")
    # A private breaker scope: the probe is not blocked by, and does not count towards, the buyers' breaker.
    probe = AprasClient(client.base_url, client.token, scope=breaker_scope(organizer) + "-connection-test", timeout=client.timeout)
    try:
        probe.check_card(PROBE_CARD)
    except ServiceNotFound:
        pass  # the token was accepted; the probe card is simply unknown
    except ServiceConfigurationError as e:
        if e.status in (401, 403):
            return REFUSED, _("APRAS refused the token (HTTP {status}). Check the token APRAS gave you.").format(status=e.status)
        return REFUSED, str(e)
    except (ServiceTimeout, ServiceUnavailable) as e:
        return UNREACHABLE, _(
            "APRAS could not be reached or did not answer within {timeout} s. Check the URL, or try a longer timeout."
        ).format(timeout=client.timeout) + (" " + str(e) if e.status else "")
    except ServiceRateLimited:
        return UNREACHABLE, _("APRAS asks us to slow down. Try again in a minute.")
    except Exception as e:  # noqa: B902 - every other answer is "unexpected", with its safe description
        return UNEXPECTED, _("APRAS answered in an unexpected way: {error}").format(error=str(e) if hasattr(e, "service") else type(e).__name__)
    CircuitBreaker(SERVICE, breaker_scope(organizer)).reset()
    return OK, _("Connection to APRAS works and the token was accepted.")
