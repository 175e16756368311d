"""
The small set of errors every external call maps to.

Messages are safe to show to organisers and to log: they name the service and the operation, never
a URL (paths can carry identifiers such as card numbers), a header, a token or a response body.
"""
from django.utils.translation import gettext_lazy as _


class ExternalServiceError(Exception):
    #: short machine-readable kind, stored in queues and shown in lists
    kind = "error"
    #: may the same call succeed later without anybody changing anything?
    transient = False
    default_message = _("{service} answered with an error ({operation}).")

    def __init__(self, service: str, operation: str, *, status: int = None, retry_after: float = None,
                 outcome_unknown: bool = False, detail: str = "", payload=None):
        self.service = service
        self.operation = operation
        self.status = status
        self.retry_after = retry_after
        #: the request was sent but no answer came back (read timeout, connection dropped after sending): the
        #: service may have processed it. Never set for an HTTP answer, not even a 5xx.
        self.outcome_unknown = outcome_unknown
        #: a short, non-sensitive explanation (e.g. an error title sent by the service)
        self.detail = detail
        #: parsed error body for callers that need it (e.g. a 422 "already exists"); never put in messages
        self.payload = payload
        super().__init__(self.message)

    @property
    def message(self) -> str:
        msg = str(self.default_message).format(service=self.service, operation=self.operation)
        if self.status:
            msg += " " + str(_("HTTP status {status}.")).format(status=self.status)
        if self.detail:
            msg += " " + self.detail
        return msg

    def __str__(self):
        return self.message


class ServiceConfigurationError(ExternalServiceError):
    """Credentials refused (401/403), missing or undecryptable secret, URL not allowed."""
    kind = "configuration"
    default_message = _("{service} refused our credentials or is not configured correctly ({operation}).")


class ServiceNotFound(ExternalServiceError):
    kind = "not_found"
    default_message = _("{service} does not know the requested object ({operation}).")


class ServiceRejected(ExternalServiceError):
    """Any other 4xx: the request was understood and refused (validation error, conflict...)."""
    kind = "rejected"
    default_message = _("{service} rejected the request ({operation}).")


class ServiceRateLimited(ExternalServiceError):
    kind = "rate_limited"
    transient = True
    default_message = _("{service} asks us to slow down ({operation}).")


class ServiceUnavailable(ExternalServiceError):
    kind = "unavailable"
    transient = True
    default_message = _("{service} is unavailable or unreachable ({operation}).")


class ServiceCircuitOpen(ServiceUnavailable):
    kind = "circuit_open"
    default_message = _("{service} failed several times in a row; calls are paused for a moment ({operation}).")


class ServiceTimeout(ExternalServiceError):
    kind = "timeout"
    transient = True
    default_message = _("{service} did not answer in time ({operation}).")


class ServiceBadResponse(ExternalServiceError):
    kind = "bad_response"
    transient = True
    default_message = _("{service} sent an answer we could not understand ({operation}).")
