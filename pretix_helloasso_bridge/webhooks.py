"""The per-event HelloAsso notification URL: ``/_helloasso/webhook/<event id>/<secret>/``."""
import logging

from django_scopes import scopes_disabled

from pretix_integrations_core.inbound import InboundWebhookView

from .models import FormLink

logger = logging.getLogger(__name__)


class HelloAssoWebhookView(InboundWebhookView):
    service = "helloasso"
    max_body_bytes = 512 * 1024

    def get_connection(self, request, **kwargs):
        with scopes_disabled():
            link = FormLink.objects.select_related("event").filter(event_id=kwargs.get("event_id")).first()
        if not link or "pretix_helloasso_bridge" not in link.event.get_plugins():
            return None
        if link.provider != "helloasso":  # Billetweb and Weezevent send no notifications: polling only
            return None
        return f"event-{link.event_id}", link.get_webhook_secret(), link

    def enqueue(self, link, payload, delivery_id):
        from .tasks import import_order

        remote_id = order_id_of(payload)
        if remote_id:
            import_order.apply_async(kwargs={"event": link.event_id, "remote_id": remote_id})


def order_id_of(payload):
    """The order a notification is about (a hint only: the order is re-fetched from the API)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        return None
    data, kind = payload["data"], payload.get("eventType")
    if kind == "Order":
        oid = data.get("id")
    elif kind == "Payment":
        oid = (data.get("order") or {}).get("id")
    else:
        return None
    return str(oid) if isinstance(oid, int) or (isinstance(oid, str) and oid.isdigit()) else None
