"""The "Test connection" buttons of the organiser's CRM connections: one probe request, and an answer that says what is wrong."""
from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.errors import (
    ExternalServiceError, ServiceConfigurationError, ServiceNotFound, ServiceRateLimited, ServiceTimeout, ServiceUnavailable,
)

from . import config
from .clients import SERVICE_MAUTIC, SERVICE_NINJA
from .docuseal_client import SERVICE_DOCUSEAL

OK = "ok"
NOT_CONFIGURED = "not_configured"
REFUSED = "refused"
WRONG_URL = "wrong_url"
UNREACHABLE = "unreachable"
UNEXPECTED = "unexpected"

SYSTEMS = {
    "mautic": (SERVICE_MAUTIC, config.mautic_client),
    "invoiceninja": (SERVICE_NINJA, config.invoiceninja_client),
    "docuseal": (SERVICE_DOCUSEAL, config.docuseal_client),
}


def check_connection(organizer, system):
    """Returns (outcome, message) for ``system`` in :data:`SYSTEMS`."""
    service, factory = SYSTEMS[system]
    try:
        # a private breaker scope: the probe neither waits for nor counts towards the sync jobs' breaker
        client = factory(organizer, scope_suffix="-connection-test", budget=8, max_attempts=1)
    except ServiceConfigurationError as e:
        return NOT_CONFIGURED, e.detail or str(e)
    try:
        client.ping()
    except ServiceConfigurationError as e:
        if e.status in (401, 403, 400):
            return REFUSED, _("{service} refused the credentials (HTTP {status}). Check them, and that the API is enabled.").format(
                service=service, status=e.status) + _describe(e)
        return REFUSED, str(e)
    except ServiceNotFound as e:
        return WRONG_URL, _("{service} answered, but not its API at this address (HTTP {status}). Check the URL.").format(
            service=service, status=e.status)
    except (ServiceTimeout, ServiceUnavailable) as e:
        return UNREACHABLE, _("{service} could not be reached or did not answer in time. Check the URL.").format(service=service) + (
            " " + str(e) if e.status else "")
    except ServiceRateLimited:
        return UNREACHABLE, _("{service} asks us to slow down. Try again in a minute.").format(service=service)
    except ExternalServiceError as e:
        return UNEXPECTED, _("{service} answered in an unexpected way: {error}").format(service=service, error=str(e))
    return OK, _("The connection to {service} works and the credentials were accepted.").format(service=service)


def _describe(error):
    from pretix_integrations_core.datasync import service_detail
    said = service_detail(error.payload)
    return (" " + str(_("{service} said: {detail}")).format(service=error.service, detail=said)) if said else ""
