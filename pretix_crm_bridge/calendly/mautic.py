"""
Prospects feed Mautic (part 1 of the CRM bridge), with part 1's consent rule: nothing goes to Mautic without consent.

A Calendly booking has no pretix checkout, so the consent is the answer to a booking question the organiser names
(``CalendlyConnection.consent_question``, e.g. a checkbox "Send me news about your events"); a booking without a yes
to it never reaches Mautic. Consenting prospects join the organiser's "new prospect" segments; when they buy, the
"converted" segments. The welcome campaign of a first purchase is part 1's own order sync (with the checkout consent).
"""
import logging

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from pretix.base.services.tasks import OrganizerTask
from pretix.celery_app import app

from pretix_integrations_core.errors import ExternalServiceError

from .. import config as crm_config
from .models import CalendlyConnection, Prospect

logger = logging.getLogger(__name__)

CREATED = "created"
CONVERTED = "converted"
NO = {"", "no", "non", "false", "0", "nein", "none"}


def consent_from(invitee, question):
    """True/False when the booking answers the consent question; None when it does not ask it (keep what we know)."""
    if not question:
        return None
    for qa in invitee.get("questions_and_answers") or []:
        if str(qa.get("question") or "").strip().lower() == question.strip().lower():
            return str(qa.get("answer") or "").strip().lower() not in NO
    return None


def _segments(conn, kind):
    return crm_config.segment_ids(conn.mautic_segments_created if kind == CREATED else conn.mautic_segments_converted)


def schedule(prospect, kind):
    """After the commit, push a consenting prospect to Mautic when the organiser chose segments for ``kind``."""
    conn = CalendlyConnection.objects.filter(organizer_id=prospect.organizer_id).first()
    if not prospect.marketing_consent or not conn or not _segments(conn, kind) or not crm_config.mautic_configured(prospect.organizer):
        return
    kwargs = {"organizer": prospect.organizer_id, "prospect": prospect.pk, "kind": kind}
    transaction.on_commit(lambda: push_prospect.apply_async(kwargs=kwargs))


@app.task(base=OrganizerTask, bind=True, acks_late=True, max_retries=5, default_retry_delay=300)
def push_prospect(self, organizer, prospect, kind):
    p = Prospect.objects.filter(organizer=organizer, pk=prospect).first()
    conn = CalendlyConnection.objects.filter(organizer=organizer).first()
    if not p or not conn or not p.marketing_consent:  # consent may have been withdrawn meanwhile
        return
    segments = _segments(conn, kind)
    try:
        first, _sep, last = (p.name or "").partition(" ")
        _created, contact = crm_config.mautic_client(organizer).upsert_contact(
            {"email": p.email, "firstname": first, "lastname": last, "phone": p.phone, "tags": ["pretix-prospect", "calendly"]})
        client = crm_config.mautic_client(organizer)
        for sid in segments:
            client.add_to_segment(sid, contact["id"])
    except ExternalServiceError as e:
        if e.transient and not app.conf.task_always_eager and self.request.retries < self.max_retries:
            raise self.retry(countdown=int(e.retry_after or 300))
        p.log_action("pretix_crm_bridge.prospect.mautic_failed", data={"kind": kind, "error": str(e)})
        logger.warning("Prospect %s could not be sent to Mautic: %s", p.pk, e)
        return
    p.log_action("pretix_crm_bridge.prospect.mautic", data={"kind": kind, "segments": ", ".join(map(str, segments)),
                                                            "label": str(_("new prospect") if kind == CREATED else _("customer"))})
