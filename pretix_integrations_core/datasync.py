"""
The one mapping from the core's HTTP errors (:mod:`pretix_integrations_core.errors`) to the errors of pretix's
outbound data-sync queue (``pretix.base.datasync``), and the retry schedule that goes with it.

==========================================  ============================================  ==========================
core error                                  pretix sync error                             what the queue does
==========================================  ============================================  ==========================
timeout, 5xx, unreachable, breaker open,    :class:`HttpRecoverableSyncError`             retried with exponential
unreadable answer, 429                                                                    back-off, at least the
                                                                                          service's Retry-After
                                                                                          (60 s for a 429 without)
sent but no answer (``outcome_unknown``)    :class:`HttpRecoverableSyncError`,            retried; providers look
                                            ``outcome_unknown=True``                      the object up by its
                                                                                          external id before creating
401 / 403, missing or unreadable secret     ``SyncConfigError``                           failed job "check settings"
400 / 404 / 410 / 422 and other 4xx         ``UnrecoverableSyncError``                    failed job "permanent error"
==========================================  ============================================  ==========================

Every message names the service and the operation and adds what the service said (e.g. "number: The number
has already been taken."), never a URL, a header or a token: it is shown to organisers in the order log and in
pretix's failed-job lists.

Providers mix :class:`HttpSyncProviderMixin` in front of ``OutboundSyncProvider``::

    @datasync_providers.register
    class MauticSync(HttpSyncProviderMixin, OutboundSyncProvider):
        ...

Their code raises the core's errors (the HTTP layer does), and the mixin translates them in ``sync_order`` and
schedules the next attempt in ``next_retry_date``. Because a request may have reached the service although no
answer came back, ``sync_object_with_properties`` must always find the object by its external id (email, number,
idempotency key) before creating it: a retry after an unknown outcome then finds what the lost request created.
"""
import logging
from datetime import timedelta

from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.datasync.datasync import RecoverableSyncError, SyncConfigError, UnrecoverableSyncError
from pretix.base.i18n import language

from .errors import ExternalServiceError, ServiceConfigurationError, ServiceRateLimited

logger = logging.getLogger(__name__)

#: first retry after this; every further attempt waits ``BACKOFF_FACTOR`` times longer, up to ``BACKOFF_MAX``
BACKOFF_BASE = timedelta(minutes=2)
BACKOFF_FACTOR = 3
BACKOFF_MAX = timedelta(hours=6)
#: a 429 without Retry-After (Invoice Ninja never sends one): wait at least this long
RATE_LIMIT_DEFAULT = timedelta(seconds=60)
#: at most this many characters of what the service said go into a message
DETAIL_MAX = 300


class HttpRecoverableSyncError(RecoverableSyncError):
    """A transient failure: pretix retries the job. Carries the service's wait hint and the unknown-outcome flag."""

    def __init__(self, messages, full_message=None, *, retry_after: float = None, outcome_unknown=False, rate_limited=False):
        super().__init__(messages, full_message)
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        self.rate_limited = rate_limited


def service_detail(payload) -> str:
    """What the service said, from the usual JSON error shapes (Mautic, Invoice Ninja, DocuSeal, Calendly)."""
    parts = []

    def add(text):
        text = " ".join(str(text).split())
        if text and text not in parts:
            parts.append(text)

    def fields(errors):
        if isinstance(errors, dict):
            for name, msgs in errors.items():
                msgs = msgs if isinstance(msgs, (list, tuple)) else [msgs]
                add(f"{name}: " + " ".join(str(m.get("message", m) if isinstance(m, dict) else m) for m in msgs))

    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list):  # Mautic: {"errors": [{"code", "message", "details"}]}
            for e in errors:
                if isinstance(e, dict):
                    add(e.get("message", ""))
                    fields(e.get("details"))
        else:
            for key in ("message", "error", "title"):
                if isinstance(payload.get(key), str):
                    add(payload[key])
            fields(errors)  # Invoice Ninja: {"message", "errors": {field: [msgs]}}
    text = " ".join(parts)
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX - 1] + "…"


def error_message(error: ExternalServiceError) -> str:
    msg = error.message
    said = service_detail(error.payload)
    if said and said not in msg:
        msg += " " + _("{service} said: {detail}").format(service=error.service, detail=said)
    if error.outcome_unknown:
        msg += " " + _("The request may have arrived: the next attempt checks for the object before creating it again.")
    return msg


def to_sync_error(error: ExternalServiceError):
    """The pretix sync error for one of the core's HTTP errors (see the table in the module docstring)."""
    msg = error_message(error)
    if isinstance(error, ServiceConfigurationError):
        return SyncConfigError([msg], msg)
    if error.transient or error.outcome_unknown:
        return HttpRecoverableSyncError([msg], msg, retry_after=error.retry_after, outcome_unknown=error.outcome_unknown,
                                        rate_limited=isinstance(error, ServiceRateLimited))
    return UnrecoverableSyncError([msg], msg)


def retry_delay(failed_attempts: int, retry_after: float = None, rate_limited=False) -> timedelta:
    """Exponential back-off (2 min, 6 min, 18 min, ... at most 6 h), never shorter than what the service asked for."""
    delay = min(BACKOFF_MAX, BACKOFF_BASE * (BACKOFF_FACTOR ** max(0, failed_attempts - 1)))
    if rate_limited:
        delay = max(delay, RATE_LIMIT_DEFAULT)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=min(retry_after, BACKOFF_MAX.total_seconds())))
    return delay


class HttpSyncProviderMixin:
    """Translates the core's errors for pretix's queue and schedules retries (see the module docstring)."""

    #: with the back-off above: about 20 hours of retries before the job waits for a person
    max_attempts = 8

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_errors = {}

    def sync_order(self, order):
        self._last_errors.pop(order.pk, None)
        try:
            with language(self.event.settings.locale):
                return super().sync_order(order)
        except ExternalServiceError as e:
            with language(self.event.settings.locale):
                err = to_sync_error(e)
            self._last_errors[order.pk] = err
            logger.info("Sync of order %s to %s failed: %s", order.code, self.identifier, e.kind)
            raise err from None

    def next_retry_date(self, sq):
        err = self._last_errors.get(sq.order_id)
        if isinstance(err, HttpRecoverableSyncError):
            return now() + retry_delay(sq.failed_attempts, err.retry_after, err.rate_limited)
        return now() + retry_delay(sq.failed_attempts)
