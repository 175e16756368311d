"""
DocuSeal's notifications: ``/_crm/docuseal/<organiser>/<secret>/`` (``shared/docs/crm-apis.md`` §2.5; the secret is
made, shown and regenerated as the other systems' in :mod:`.webhook_secrets`).

The door (:class:`DocuSealWebhookView`, on the core's :class:`~pretix_integrations_core.inbound.InboundWebhookView`)
checks the secret of the URL, then ``X-Docuseal-Signature: <unix ts>.<hex HMAC-SHA256("<ts>." + body)>`` with the
organiser's ``whsec_…`` secret (±300 s, constant time) and/or the custom secret header of older DocuSeal versions,
whichever the organiser configured (at least one is required). A delivery already seen (same ``event_type``,
``data.id`` and ``timestamp``, which DocuSeal keeps across its retries) is acknowledged and not processed again. The
answer comes at once; :func:`process_event` updates the signature request in a Celery task.
"""
import logging

from django.db import transaction
from django_scopes import scope, scopes_disabled

from pretix.base.models import Organizer
from pretix.celery_app import app

from pretix_integrations_core import crypto, webhooks
from pretix_integrations_core.inbound import InboundWebhookView, secrets_match

from . import config
from .models import SignatureRequest
from .webhook_secrets import path_secret

logger = logging.getLogger(__name__)

SIGNATURE_TOLERANCE = 300

#: DocuSeal event → (new status, log action)
EVENTS = {
    "form.viewed": (SignatureRequest.OPENED, "pretix_crm_bridge.docuseal.viewed"),
    "form.started": (SignatureRequest.STARTED, "pretix_crm_bridge.docuseal.started"),
    "form.completed": (SignatureRequest.COMPLETED, "pretix_crm_bridge.docuseal.completed"),
    "form.declined": (SignatureRequest.DECLINED, "pretix_crm_bridge.docuseal.declined"),
    "submission.completed": (SignatureRequest.COMPLETED, "pretix_crm_bridge.docuseal.completed"),
    "submission.expired": (SignatureRequest.EXPIRED, "pretix_crm_bridge.docuseal.expired"),
    "submission.archived": (SignatureRequest.ARCHIVED, "pretix_crm_bridge.docuseal.archived"),
}
#: how far each status is along the way: an older notification arriving late never moves a request back
RANK = {SignatureRequest.PENDING: 0, SignatureRequest.SENT: 1, SignatureRequest.OPENED: 2, SignatureRequest.STARTED: 3}


def _secret(organizer, key):
    try:
        return crypto.get_secret(organizer.settings, key) or ""
    except crypto.SecretError:
        return ""


class DocuSealWebhookView(InboundWebhookView):
    service = "crm-docuseal"

    def get_connection(self, request, **kwargs):
        with scopes_disabled():
            organizer = Organizer.objects.filter(slug=kwargs.get("organizer_slug") or "").first()
        if not organizer or "pretix_crm_bridge" not in organizer.get_plugins() or not config.docuseal_configured(organizer):
            return None
        return f"org-{organizer.pk}", path_secret(organizer, "docuseal"), organizer

    def verify(self, request, body, organizer):
        hmac_secret = _secret(organizer, config.DOCUSEAL_HMAC_SECRET)
        header_name = organizer.settings.get(config.DOCUSEAL_HEADER_NAME) or ""
        header_value = _secret(organizer, config.DOCUSEAL_HEADER_VALUE)
        if not hmac_secret and not (header_name and header_value):
            logger.warning("DocuSeal webhook for organizer %s refused: neither a signing secret nor a secret header is set", organizer.pk)
            return False
        if header_name and header_value and not secrets_match(header_value, request.headers.get(header_name, "")):
            return False
        if hmac_secret:
            timestamp, signatures = webhooks.parse_dotted_header(request.headers.get("X-Docuseal-Signature", ""))
            if not webhooks.verify(hmac_secret, body, signatures, timestamp=timestamp, tolerance=SIGNATURE_TOLERANCE):
                return False
        return True

    def delivery_id(self, request, body, payload):
        data = payload.get("data") if isinstance(payload, dict) else None
        if isinstance(data, dict) and payload.get("event_type") and payload.get("timestamp"):
            return f"{payload['event_type']}:{data.get('id')}:{payload['timestamp']}"
        return super().delivery_id(request, body, payload)

    def enqueue(self, organizer, payload, delivery_id):
        event = brief(payload)
        if event:
            process_event.apply_async(kwargs={"organizer": organizer.pk, "event": event})


def brief(payload):
    """What the task needs from a notification (no personal data goes through the task queue)."""
    if not isinstance(payload, dict) or payload.get("event_type") not in EVENTS or not isinstance(payload.get("data"), dict):
        return None
    data, kind = payload["data"], payload["event_type"]
    submission = data.get("submission") if isinstance(data.get("submission"), dict) else {}
    documents = data.get("documents") if isinstance(data.get("documents"), list) else []
    if kind.startswith("form."):
        submitter_id, submission_id = data.get("id"), data.get("submission_id") or submission.get("id")
    else:
        submitter_id, submission_id = None, data.get("id")
    pdf = next((d.get("url") for d in documents if isinstance(d, dict) and d.get("url")), None) \
        or submission.get("combined_document_url") or data.get("combined_document_url")
    return {"type": kind, "submitter_id": submitter_id if isinstance(submitter_id, int) else None,
            "submission_id": submission_id if isinstance(submission_id, int) else None,
            "pdf": pdf if isinstance(pdf, str) and pdf.startswith(("https://", "http://")) else "",
            "decline_reason": str(data.get("decline_reason") or "")[:500]}


@app.task(acks_late=True)
def process_event(organizer, event):
    with scopes_disabled():
        org = Organizer.objects.filter(pk=organizer).first()
    if not org:
        return
    with scope(organizer=org):
        apply_event(org, event)


def apply_event(organizer, event):
    """Bring the signature request up to date with one DocuSeal notification, and log the change on its order."""
    status, action = EVENTS[event["type"]]
    qs = SignatureRequest.objects.filter(organizer=organizer).select_related("order", "position")
    if event["submitter_id"]:
        qs = qs.filter(submitter_id=event["submitter_id"])
    elif event["submission_id"]:
        qs = qs.filter(submission_id=event["submission_id"])
    else:
        return
    with transaction.atomic():
        for req in qs.select_for_update(of=("self",)):
            late_document = status == SignatureRequest.COMPLETED and req.status == status and event["pdf"] and not req.signed_pdf_url
            moves = req.status not in SignatureRequest.FINAL and RANK.get(status, 99) > RANK.get(req.status, 0)
            if not moves and not late_document:
                continue  # an older or repeated notification: never move a request back
            if status == SignatureRequest.COMPLETED and event["pdf"]:
                req.signed_pdf_url = event["pdf"][:1000]
            if status == SignatureRequest.DECLINED:
                req.decline_reason = event["decline_reason"]
            req.status = status
            req.save()
            if moves:
                req.order.log_action(action, data={"position": req.position.positionid, "submission_id": req.submission_id})
