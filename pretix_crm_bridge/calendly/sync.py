"""
Bookings to prospects: the upsert of one invitee (sync and webhooks share it) and the rolling-window sync.

- one prospect per email per organiser (case-insensitive, enforced by the database); a second booking adds a meeting
  and a note, never a second prospect;
- a meeting is keyed by its invitee URI: a repeated delivery or a later sync updates it; a cancellation marks it
  cancelled, a reschedule marks the old meeting rescheduled (Calendly cancels the old invitee and creates a new one);
- one sync per organiser at a time, across workers (a conditional UPDATE on the connection claims it).
"""
import logging
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.dateparse import parse_datetime
from django.utils.timezone import now
from django.utils.translation import gettext as _g

from pretix_integrations_core.errors import ExternalServiceError, ServiceConfigurationError
from pretix_integrations_core.oauth import OAuthInvalidGrant

from . import mautic
from .client import CalendlyClient
from .models import CalendlyConnection, Meeting, Prospect

logger = logging.getLogger(__name__)

#: the rolling window of the sync, around now
WINDOW_PAST = timedelta(days=90)
WINDOW_FUTURE = timedelta(days=365)
#: events and invitees per page (Calendly allows up to 100)
PAGE_SIZE = 100
#: a claim older than this belongs to a worker that died
STALE_CLAIM = timedelta(minutes=15)

PHONE_QUESTION = re.compile(r"phone|t[ée]l[ée]phone|\btel\b|mobile|portable|whatsapp", re.I)
PHONE_VALUE = re.compile(r"^\+?[\d\s().-]{6,20}$")

LOG_CREATED = "pretix_crm_bridge.prospect.created"
LOG_MEETING_ADDED = "pretix_crm_bridge.prospect.meeting_added"
LOG_MEETING_CANCELED = "pretix_crm_bridge.prospect.meeting_canceled"
LOG_MEETING_RESCHEDULED = "pretix_crm_bridge.prospect.meeting_rescheduled"
LOG_CONSENT_GIVEN = "pretix_crm_bridge.prospect.consent_given"
LOG_CONSENT_WITHDRAWN = "pretix_crm_bridge.prospect.consent_withdrawn"


class SyncAlreadyRunning(Exception):
    pass


def _phone(invitee):
    if invitee.get("text_reminder_number"):
        return str(invitee["text_reminder_number"])[:64]
    for qa in invitee.get("questions_and_answers") or []:
        answer = str(qa.get("answer") or "").strip()
        if PHONE_QUESTION.search(str(qa.get("question") or "")) and PHONE_VALUE.match(answer):
            return answer[:64]
    return ""


def _location(event):
    loc = event.get("location") or {}
    join = loc.get("join_url") or ""
    text = loc.get("location") or ""
    if not text and loc.get("type") and not join:
        text = str(loc.get("type"))
    return str(text)[:500], (join if str(join).startswith(("https://", "http://")) else "")[:500]


def _dt(value):
    return parse_datetime(value) if isinstance(value, str) else None


def _merge_answers(old, new):
    merged = {a.get("question"): a for a in (old or []) if isinstance(a, dict)}
    for qa in new or []:
        if isinstance(qa, dict) and qa.get("question"):
            merged[qa["question"]] = {"question": str(qa["question"]), "answer": str(qa.get("answer") or "")}
    return list(merged.values())


def _meeting_label(meeting):
    when = meeting.start.strftime("%Y-%m-%d %H:%M UTC") if meeting.start else "?"
    return f"{meeting.event_type_name} ({when})"


def _notify(logentry):
    from .notifications import schedule
    schedule(logentry)


def _prospect_for(organizer, invitee):
    """The prospect of this email, created when missing; returns (prospect, created). Safe against a concurrent insert."""
    email = (invitee.get("email") or "").strip()
    existing = Prospect.objects.filter(organizer=organizer, email__iexact=email).first()
    if existing:
        return existing, False
    name = invitee.get("name") or " ".join(p for p in (invitee.get("first_name"), invitee.get("last_name")) if p)
    try:
        with transaction.atomic():
            return Prospect.objects.create(organizer=organizer, email=email, name=(name or "")[:255], phone=_phone(invitee),
                                           answers=_merge_answers([], invitee.get("questions_and_answers")), source="calendly"), True
    except IntegrityError:  # a webhook and a sync (or two deliveries) at the same time: the other one created it
        return Prospect.objects.get(organizer=organizer, email__iexact=email), False


def upsert_invitee(organizer, invitee: dict, event: dict):
    """
    Bring the prospect and the meeting of one invitee (with its scheduled event) up to date.

    Returns the meeting, or None when the invitee has no usable email.
    """
    email = (invitee.get("email") or "").strip()
    uri = invitee.get("uri") or ""
    if not email or "@" not in email or not uri:
        return None
    connection = CalendlyConnection.objects.filter(organizer=organizer).first()
    with transaction.atomic():
        prospect, created = _prospect_for(organizer, invitee)
        prospect = Prospect.objects.select_for_update().get(pk=prospect.pk)
        location, join_url = _location(event)
        values = {"event_uri": event.get("uri") or invitee.get("event") or "", "event_type_name": (event.get("name") or "")[:255],
                  "start": _dt(event.get("start_time")), "end": _dt(event.get("end_time")), "location": location, "join_url": join_url}
        meeting = Meeting.objects.filter(invitee_uri=uri).first()
        new_meeting = meeting is None
        if new_meeting:
            meeting = Meeting.objects.create(prospect=prospect, invitee_uri=uri, **values)
        else:
            for k, v in values.items():
                setattr(meeting, k, v)
        # the consent of a booking counts when it arrives (a later sync of an older booking never overrides it)
        consent = mautic.consent_from(invitee, connection.consent_question if connection else "") if new_meeting else None
        consent_given = consent is True and not prospect.marketing_consent
        if consent is not None and consent != prospect.marketing_consent:
            prospect.marketing_consent = consent
            prospect.save(update_fields=["marketing_consent", "updated"])
            prospect.log_action(LOG_CONSENT_GIVEN if consent else LOG_CONSENT_WITHDRAWN, data={"meeting": _meeting_label(meeting)})
        if created:
            _notify(prospect.log_action(LOG_CREATED, data={"email": prospect.email, "name": prospect.name,
                                                           "meeting": _meeting_label(meeting), "source": "calendly"}))
        elif new_meeting:
            prospect.notes = (prospect.notes + "\n" if prospect.notes else "") + _g("{date}: booked again: {meeting}").format(
                date=now().strftime("%Y-%m-%d"), meeting=_meeting_label(meeting))
            prospect.answers = _merge_answers(prospect.answers, invitee.get("questions_and_answers"))
            if not prospect.phone:
                prospect.phone = _phone(invitee)
            prospect.save()
            prospect.log_action(LOG_MEETING_ADDED, data={"meeting": _meeting_label(meeting)})
        if consent_given:
            mautic.schedule(prospect, mautic.CREATED)
        if invitee.get("status") == "canceled" and meeting.status == Meeting.ACTIVE:
            cancellation = invitee.get("cancellation") or {}
            meeting.cancel_reason = str(cancellation.get("reason") or "")
            if invitee.get("rescheduled"):
                meeting.status = Meeting.RESCHEDULED
                meeting.new_invitee_uri = invitee.get("new_invitee") or ""
                prospect.log_action(LOG_MEETING_RESCHEDULED, data={"meeting": _meeting_label(meeting)})
            else:
                meeting.status = Meeting.CANCELED
                _notify(prospect.log_action(LOG_MEETING_CANCELED, data={"meeting": _meeting_label(meeting), "reason": meeting.cancel_reason}))
        elif invitee.get("status") == "active" and meeting.status != Meeting.ACTIVE and not new_meeting:
            meeting.status = Meeting.ACTIVE  # Calendly never reactivates an invitee; a stale out-of-order delivery is the only way here
        meeting.save()
    return meeting


# -- the sync ------------------------------------------------------------------------------------------------

def claim(connection):
    stale = now() - STALE_CLAIM
    n = CalendlyConnection.objects.filter(pk=connection.pk).filter(Q(running_since__isnull=True) | Q(running_since__lt=stale)).update(
        running_since=now())
    if not n:
        raise SyncAlreadyRunning()


def release(connection):
    CalendlyConnection.objects.filter(pk=connection.pk).update(running_since=None)


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def run_sync(connection, client: CalendlyClient = None):
    """Sync the rolling window; one at a time per organiser. Returns the number of invitees seen; errors are recorded and raised."""
    claim(connection)
    started = now()
    try:
        client = client or CalendlyClient.for_connection(connection)
        seen = 0
        window = {"min_start": _iso(started - WINDOW_PAST), "max_start": _iso(started + WINDOW_FUTURE), "count": PAGE_SIZE}
        try:
            events = list(client.scheduled_events(organization=connection.organization_uri, **window))
        except ServiceConfigurationError as e:
            if e.status != 403 or not connection.user_uri:
                raise
            # not an admin of the organisation: the connected user's own events
            events = list(client.scheduled_events(organization=connection.organization_uri, user=connection.user_uri, **window))
        for event in events:
            for invitee in client.invitees(event["uri"], count=PAGE_SIZE):
                if upsert_invitee(connection.organizer, invitee, event):
                    seen += 1
        check_subscription(connection, client)
    except ExternalServiceError as e:
        message = str(e)
        if isinstance(e, OAuthInvalidGrant):
            message += " " + _g("The access was revoked or expired: connect Calendly again.")
        CalendlyConnection.objects.filter(pk=connection.pk).update(last_error=message[:1000], last_error_at=now())
        raise
    finally:
        release(connection)
    CalendlyConnection.objects.filter(pk=connection.pk).update(last_sync=started, last_error="", last_error_at=None)
    return seen


def check_subscription(connection, client):
    """
    Calendly disables a subscription whose deliveries failed for 24 hours (and never says so): a disabled or vanished
    one is created again, so that bookings arrive at once again instead of only at the next sync. So is one that calls
    a URL which is no longer the organiser's webhook URL (its secret or the URL scheme changed).
    """
    from pretix_integrations_core.errors import ServiceNotFound

    from .connect import subscribe, webhook_url

    if not connection.webhook_uri:
        return
    try:
        try:
            hook = client.get_webhook(connection.webhook_uri)
        except ServiceNotFound:
            hook = None
        if not hook:
            why = "gone"
        elif hook.get("state") != "active":
            why = str(hook.get("state"))
        elif hook.get("callback_url") != webhook_url(connection):
            why = "calling an old URL"
        else:
            return
        logger.info("Calendly webhook subscription of organiser %s is %s: creating it again", connection.organizer_id, why)
        if hook:
            client.delete_webhook(connection.webhook_uri)
        connection.refresh_from_db()
        subscribe(connection, client)
    except ExternalServiceError as e:  # the bookings are synced; the subscription is checked again next time
        logger.warning("Calendly webhook subscription of organiser %s could not be checked: %s", connection.organizer_id, e)
