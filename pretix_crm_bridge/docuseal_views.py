"""DocuSeal's control views: "Resend" on the order page. The webhook door is in :mod:`.docuseal_webhooks`."""
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views import View

from pretix.base.models import Order
from pretix.control.permissions import EventPermissionRequiredMixin

from .models import SignatureRequest
from .triggers import enqueue


class ResendSignatureView(EventPermissionRequiredMixin, View):
    """Send a ticket's signing link again (a new request if it was declined or expired); DocuSeal is called by the queue."""
    permission = "event.orders:write"

    def post(self, request, *args, **kwargs):
        order = get_object_or_404(Order, event=request.event, code=kwargs["code"])
        req = get_object_or_404(SignatureRequest, order=order, position__positionid=kwargs["position"])
        if req.status in (SignatureRequest.COMPLETED, SignatureRequest.PENDING) or order.status not in (Order.STATUS_PAID, Order.STATUS_PENDING):
            messages.error(request, _("This signature request cannot be sent again."))
        else:
            with transaction.atomic():
                req.resend_requested = True
                req.save(update_fields=["resend_requested", "updated"])
                order.log_action("pretix_crm_bridge.docuseal.resend_requested", user=request.user,
                                 data={"position": req.position.positionid, "submission_id": req.submission_id})
                enqueue(order, "signature_resend")
            messages.success(request, _("The signing link will be sent again in a moment."))
        return redirect(reverse("control:event.order", kwargs={"organizer": request.organizer.slug, "event": request.event.slug,
                                                               "code": order.code}))
