"""
Base view for inbound webhooks (HelloAsso today; Mautic, Calendly and DocuSeal can use it too).

- CSRF-exempt, POST only, the raw body is read with a size cap (413 above it);
- the connection is found from the URL (e.g. an event and an unguessable secret in the path) and the secret is
  compared in constant time; a wrong secret gets a 404 and a log line that never contains the secret;
- a signature (with a timestamp tolerance when the sender signs one) can be checked by overriding :meth:`verify`;
- each accepted delivery is recorded in :class:`~pretix_integrations_core.models.WebhookDelivery` (the sender's
  delivery id, or a digest of the body when it sends none): a repeated delivery is acknowledged, not processed again;
- the answer is a 2xx at once; the work is enqueued after the delivery record is committed (:meth:`enqueue`).
"""
import hashlib
import hmac
import json
import logging

from django.db import IntegrityError, transaction
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)


def secrets_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two secrets; False when either is empty."""
    if not expected or not given:
        return False
    return hmac.compare_digest(str(expected).encode(), str(given).encode())


def _quiet(response):
    """Django logs the path of 4xx answers; webhook paths carry secrets, so these answers are not logged by Django."""
    response._has_been_logged = True
    return response


@method_decorator(csrf_exempt, name="dispatch")
class InboundWebhookView(View):
    #: service name, used in the dedupe records and in logs
    service = "webhook"
    #: larger bodies are refused with 413 before they are read
    max_body_bytes = 256 * 1024

    # -- to override -------------------------------------------------------------------------------

    def get_connection(self, request, **kwargs):
        """Return ``(connection_key, expected_secret, context)`` for the URL, or None when it designates nothing."""
        raise NotImplementedError

    def given_secret(self, request, **kwargs) -> str:
        return kwargs.get("secret", "")

    def verify(self, request, body: bytes, context) -> bool:
        """Extra authenticity checks (a signature header, a timestamp tolerance); True by default."""
        return True

    def delivery_id(self, request, body: bytes, payload) -> str:
        """The sender's delivery id; by default a digest of the raw body (for senders that give none)."""
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def enqueue(self, context, payload, delivery_id):
        """Start the work (e.g. ``task.apply_async``); called after the delivery record is committed."""
        raise NotImplementedError

    # -- the door ----------------------------------------------------------------------------------

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return _quiet(HttpResponseNotAllowed(["POST"]))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.max_body_bytes:
            return _quiet(HttpResponse(status=413))
        found = self.get_connection(request, **kwargs)
        if not found or not secrets_match(found[1], self.given_secret(request, **kwargs)):
            logger.warning("%s webhook: unknown connection or wrong secret (path secret not logged)", self.service)
            return _quiet(HttpResponse(status=404))
        key, _secret, context = found
        body = request.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            return _quiet(HttpResponse(status=413))
        if not self.verify(request, body, context):
            logger.warning("%s webhook for %s: signature check failed", self.service, key)
            return _quiet(HttpResponse(status=403))
        try:
            payload = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return _quiet(HttpResponse(status=400))
        delivery_id = self.delivery_id(request, body, payload)[:190]
        from .models import WebhookDelivery

        try:
            with transaction.atomic():
                WebhookDelivery.objects.create(service=self.service, connection=key[:190], delivery_id=delivery_id)
                transaction.on_commit(lambda: self.enqueue(context, payload, delivery_id))
        except IntegrityError:
            return JsonResponse({"status": "duplicate"}, status=200)
        return JsonResponse({"status": "accepted"}, status=202)
