"""
Mautic → pretix: a contact who unsubscribes in Mautic withdraws their marketing consent in pretix.

Mautic signs each webhook with ``Webhook-Signature: base64(HMAC-SHA256(secret, raw body))`` and no timestamp
(``crm-apis.md`` §4.5). The organiser's URL carries an unguessable secret (:mod:`.webhook_secrets`) *and* the signature
is checked with the webhook secret copied from Mautic into the CRM connections: without it, nothing is accepted.
Deliveries are deduplicated on a digest of the body (Mautic gives no delivery id), and withdrawing a consent twice
does nothing more, so a repeated delivery is harmless. The answer is a 2xx at once (Mautic drops a batch answered
otherwise); the work happens in a worker.

Handled: ``mautic.lead_channel_subscription_changed`` on the email channel to "unsubscribed" or "manual" (do not
contact; Mautic sends it for an unsubscribe link as for a do-not-contact set by hand or through its API). A bounce
is not a withdrawal. Contact updates (``mautic.lead_post_save_update``) are deliberately not read as a withdrawal
even when the contact is still "do not contact": they describe a state, not a change, and would take back the
consent a buyer gives again at a later checkout.
"""
import logging

from django_scopes import scope, scopes_disabled

from pretix.base.models import Order, Organizer
from pretix.base.models.datasync import OrderSyncResult
from pretix.celery_app import app

from pretix_integrations_core import crypto
from pretix_integrations_core.inbound import InboundWebhookView
from pretix_integrations_core.webhooks import BASE64, verify

from . import config
from .webhook_secrets import path_secret

logger = logging.getLogger(__name__)

#: do-not-contact reasons that mean "the person does not want it": 1 unsubscribed, 3 manual (2 is a bounce)
WITHDRAWN_REASONS = {1, 3, "1", "3", "unsubscribed", "manual"}
SUBSCRIPTION_CHANGED = "mautic.lead_channel_subscription_changed"


class MauticWebhookView(InboundWebhookView):
    service = "crm-mautic"

    def get_connection(self, request, **kwargs):
        with scopes_disabled():
            organizer = Organizer.objects.filter(slug=kwargs.get("organizer_slug") or "").first()
        if not organizer or "pretix_crm_bridge" not in organizer.get_plugins() or not config.mautic_configured(organizer):
            return None
        return f"org-{organizer.pk}", path_secret(organizer, "mautic"), organizer

    def verify(self, request, body, organizer):
        try:
            secret = crypto.get_secret(organizer.settings, config.MAUTIC_WEBHOOK_SECRET) or ""
        except crypto.SecretError:
            secret = ""
        if not secret:
            logger.warning("Mautic webhook for organizer %s refused: no webhook secret entered in the CRM connections", organizer.pk)
            return False
        return verify(secret, body, request.headers.get("Webhook-Signature") or "", encoding=BASE64)

    def enqueue(self, organizer, payload, delivery_id):
        contacts = unsubscribed_contacts(payload)
        if contacts:
            withdraw_unsubscribed.apply_async(kwargs={"organizer_id": organizer.pk, "contacts": contacts})


def _contact_ref(contact):
    if not isinstance(contact, dict):
        return None
    fields = (contact.get("fields") or {}).get("all") or {}
    email = fields.get("email") if isinstance(fields, dict) else None
    cid = contact.get("id")
    ref = {"id": cid if isinstance(cid, int) else None, "email": email if isinstance(email, str) and "@" in email else None}
    return ref if ref["id"] or ref["email"] else None


def unsubscribed_contacts(payload):
    """The contacts (id, email) a Mautic webhook body says unsubscribed from email."""
    if not isinstance(payload, dict):
        return []
    found = []
    for entry in payload.get(SUBSCRIPTION_CHANGED) or []:
        if isinstance(entry, dict) and entry.get("channel") == "email" and entry.get("new_status") in WITHDRAWN_REASONS:
            found.append(_contact_ref(entry.get("contact")))
    unique = []
    for ref in found:
        if ref and ref not in unique:
            unique.append(ref)
    return unique[:200]


@app.task(acks_late=True)
def withdraw_unsubscribed(organizer_id, contacts):
    from .sync import MauticSync, has_consent, withdraw_consent
    with scopes_disabled():
        organizer = Organizer.objects.filter(pk=organizer_id).first()
    if organizer is None:
        return
    with scope(organizer=organizer):
        for ref in contacts:
            orders = set()
            if ref.get("email"):
                orders |= set(Order.objects.filter(event__organizer=organizer, email__iexact=ref["email"]).values_list("pk", flat=True))
            if ref.get("id"):
                orders |= set(OrderSyncResult.objects.filter(order__event__organizer=organizer, sync_provider=MauticSync.identifier,
                                                             sync_info__contact_id=ref["id"]).values_list("order_id", flat=True))
            for order in Order.objects.filter(pk__in=orders).select_related("event"):
                if has_consent(order):
                    withdraw_consent(order, data={"source": "mautic", "mautic_contact_id": ref.get("id")})
