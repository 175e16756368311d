"""
The Calendly webhook receiver: ``/_crm/calendly/<organizer slug>/<path secret>/``, like the CRM bridge's other webhook URLs
(:mod:`pretix_crm_bridge.webhook_secrets`).

The core's inbound view checks the path secret, reads the raw body (size cap), records the delivery (a repeated one is
acknowledged, not processed again) and answers 202 at once; the upsert runs in a task after the commit. This module
adds the ``Calendly-Webhook-Signature`` check: HMAC-SHA256 over ``t + "." + raw body`` with the subscription's
signing key (or the OAuth app's key, which Calendly may sign with), within 3 minutes, compared in constant time.
"""
import logging

from django_scopes import scopes_disabled

from pretix_integrations_core import webhooks
from pretix_integrations_core.inbound import InboundWebhookView

from ..webhook_secrets import path_secret
from . import config
from .models import CalendlyConnection

logger = logging.getLogger(__name__)

TOLERANCE = 180
HANDLED_EVENTS = ("invitee.created", "invitee.canceled")


class CalendlyWebhookView(InboundWebhookView):
    service = "calendly"

    def get_connection(self, request, **kwargs):
        with scopes_disabled():
            conn = CalendlyConnection.objects.select_related("organizer").filter(organizer__slug=kwargs.get("organizer_slug") or "").first()
        if not conn or not conn.organization_uri or "pretix_crm_bridge" not in conn.organizer.get_plugins():
            return None
        return f"calendly-{conn.pk}", path_secret(conn.organizer, "calendly"), conn

    def verify(self, request, body, conn):
        timestamp, signatures = webhooks.parse_keyed_header(request.headers.get("Calendly-Webhook-Signature", ""))
        keys = [k for k in (conn.secret("webhook_signing_key"), config.get("calendly_webhook_signing_key")) if k]
        return any(webhooks.verify(key, body, signatures, timestamp=timestamp, tolerance=TOLERANCE) for key in keys)

    def enqueue(self, conn, payload, delivery_id):
        from .tasks import process_delivery

        if not isinstance(payload, dict) or payload.get("event") not in HANDLED_EVENTS or not isinstance(payload.get("payload"), dict):
            return  # other event kinds (no-shows, routing forms) are acknowledged and ignored
        process_delivery.apply_async(kwargs={"organizer": conn.organizer_id, "connection": conn.pk, "payload": payload["payload"]})
