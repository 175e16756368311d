"""
A small outbox for calls to an external service that must happen **at most once and never be lost silently**
(a Sortir! grant to APRAS; later a CRM write), when the service offers no idempotency key.

The caller's own model holds one row per message; :class:`Outbox` only moves its state field::

    pending --claim()--> sending --complete()----> done
       ^                    |------retry_later()--> pending (next attempt set)
       |                    |------fail()---------> failed
       |                    '------mark_unknown()-> unknown
       |      sending older than ``stale_after`` --sweep_stale()--> unknown
       '--requeue()-- failed / unknown --resolve()--> done      (organiser's decisions)
    pending --withdraw()--> any other state (the message must not be sent any more)

- :meth:`Outbox.claim` is one conditional UPDATE (pending -> sending) committed in its own durable
  transaction *before* the request: across workers exactly one caller wins, and only the winner sends.
- The outcome is written afterwards, in a second transaction, and only if the row is still "sending".
- If the worker dies (or the database fails) between the two, the row stays "sending". Nothing sends it
  again: :meth:`Outbox.sweep_stale`, run by a periodic task, turns rows that have been "sending" for longer
  than the request budget plus a margin into "unknown", for a person to check with the service and then
  resend or mark as done.

Every move is a conditional UPDATE by primary key on the model's base manager (django-scopes does not
apply: callers decide which rows they act on). Each move also sets ``changed_field`` (``queryset.update``
does not touch ``auto_now`` fields), which is what the sweep measures.
"""
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils.timezone import now

from .errors import ExternalServiceError, ServiceConfigurationError

RETRY = "retry"
FAILED = "failed"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outbox:
    model: type
    pending: str
    sending: str
    done: str
    failed: str
    unknown: str
    #: how long a row may stay "sending": the request's total time budget plus a generous margin
    stale_after: timedelta
    state_field: str = "state"
    #: a datetime field set on every move (when the row entered its current state)
    changed_field: str = "updated"
    attempts_field: str = "attempts"
    next_attempt_field: str = "next_attempt"

    # -- sending ------------------------------------------------------------------------------------

    def claim(self, pk) -> bool:
        """
        pending -> sending, committed before returning. True only for the one caller that may send now.

        Raises ``RuntimeError`` when called inside a transaction: the "sending" state must be committed
        before any request leaves, or a rollback would make the message look unsent.
        """
        with transaction.atomic(durable=True):
            return self._rows(pk, [self.pending]).update(**{
                self.state_field: self.sending, self.changed_field: now(),
                self.attempts_field: F(self.attempts_field) + 1,
            }) == 1

    def complete(self, pk, on_move=None, **fields) -> bool:
        """
        The service confirmed: sending (or unknown, if the sweep was faster) -> done, with ``fields``
        (e.g. the receipt's id). If the row has moved on meanwhile (e.g. released), the fields are still
        recorded, since the service did process the message, but the state is left alone; returns False then.
        """
        with transaction.atomic():
            if self._move(pk, [self.sending, self.unknown], self.done, fields, on_move):
                return True
            self._rows(pk).update(**fields)
            return False

    def retry_later(self, pk, when, on_move=None, **fields) -> bool:
        """The service answered that it could not take the message now: sending -> pending, due at ``when``."""
        return self._move(pk, [self.sending], self.pending, {self.next_attempt_field: when, **fields}, on_move)

    def fail(self, pk, on_move=None, **fields) -> bool:
        """The message cannot be delivered without somebody changing something: sending -> failed."""
        return self._move(pk, [self.sending], self.failed, fields, on_move)

    def mark_unknown(self, pk, on_move=None, **fields) -> bool:
        """Sent, but no answer came back: sending -> unknown. Never sent again automatically."""
        return self._move(pk, [self.sending], self.unknown, fields, on_move)

    def withdraw(self, pk, state, on_move=None, **fields) -> bool:
        """The message must not be sent any more (e.g. its order was cancelled): pending -> ``state``."""
        return self._move(pk, [self.pending], state, fields, on_move)

    # -- housekeeping and the organiser's decisions ------------------------------------------------

    def due(self):
        """Pending rows whose next attempt is due, oldest first."""
        return self.model._base_manager.filter(**{
            self.state_field: self.pending, f"{self.next_attempt_field}__lte": now(),
        }).order_by(self.next_attempt_field)

    def sweep_stale(self, on_move=None, **fields) -> list:
        """
        Rows that stayed "sending" longer than ``stale_after`` belong to a worker that died between its
        request and recording the answer: sending -> unknown. ``on_move(pk)`` runs in the same transaction as
        each move (e.g. to write a log entry). Returns the primary keys moved.
        """
        cutoff = now() - self.stale_after
        stale = self.model._base_manager.filter(**{self.state_field: self.sending, f"{self.changed_field}__lt": cutoff})
        moved = []
        for pk in stale.values_list("pk", flat=True):
            with transaction.atomic():
                if self._rows(pk, [self.sending]).filter(**{f"{self.changed_field}__lt": cutoff}).update(
                        **{self.state_field: self.unknown, self.changed_field: now(), **fields}) == 1:
                    if on_move:
                        on_move(pk)
                    moved.append(pk)
        return moved

    def requeue(self, pk, on_move=None, **fields) -> bool:
        """A person decided to send it again: failed / unknown -> pending, due now, attempts counted afresh."""
        return self._move(pk, [self.failed, self.unknown], self.pending,
                          {self.next_attempt_field: now(), self.attempts_field: 0, **fields}, on_move)

    def resolve(self, pk, on_move=None, **fields) -> bool:
        """A person checked with the service that the message arrived: failed / unknown -> done."""
        return self._move(pk, [self.failed, self.unknown], self.done, fields, on_move)

    # -- internals -----------------------------------------------------------------------------------

    def _rows(self, pk, states=None):
        qs = self.model._base_manager.filter(pk=pk)
        return qs.filter(**{f"{self.state_field}__in": states}) if states else qs

    def _move(self, pk, from_states, to_state, fields, on_move=None) -> bool:
        with transaction.atomic():
            moved = self._rows(pk, from_states).update(**{self.state_field: to_state, self.changed_field: now(), **fields}) == 1
            if moved and on_move:
                on_move()
            return moved


def outcome_of(error: ExternalServiceError, attempts: int, max_attempts: int) -> str:
    """
    What to do after a failed delivery: ``UNKNOWN`` when the request was sent without an answer, ``RETRY``
    for transient errors (an HTTP 5xx included) and refused credentials (the organiser may fix them) while
    attempts remain, ``FAILED`` otherwise.
    """
    if error.outcome_unknown:
        return UNKNOWN
    if (error.transient or isinstance(error, ServiceConfigurationError)) and attempts < max_attempts:
        return RETRY
    return FAILED
