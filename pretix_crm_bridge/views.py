from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views import View

from pretix.base.models import Order
from pretix.control.permissions import EventPermissionRequiredMixin, OrganizerPermissionRequiredMixin
from pretix.control.views.event import EventSettingsFormView, EventSettingsViewMixin
from pretix.control.views.organizer import OrganizerDetailViewMixin, OrganizerSettingsFormView

from . import config
from .connection import OK, SYSTEMS, check_connection
from .forms import CrmConnectionsForm, CrmEventSettingsForm
from .health import organizer_health
from .sync import has_consent, withdraw_consent
from .triggers import SYSTEM_NAMES, TRIGGERS


class ConnectionsView(OrganizerSettingsFormView):
    form_class = CrmConnectionsForm
    template_name = "pretix_crm_bridge/connections.html"
    permission = "organizer.settings.general:write"

    def get_success_url(self):
        return reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": self.request.organizer.slug})

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["health"] = organizer_health(self.request.organizer)
        return ctx


class ConnectionTestView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        if kwargs["system"] not in SYSTEMS:
            raise Http404()
        outcome, message = check_connection(request.organizer, kwargs["system"])
        (messages.success if outcome == OK else messages.error)(request, message)
        return redirect(reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": request.organizer.slug}))


class EventCrmSettingsView(EventSettingsViewMixin, EventSettingsFormView):
    form_class = CrmEventSettingsForm
    template_name = "pretix_crm_bridge/event_settings.html"
    permission = "event.settings.general:write"

    def dispatch(self, request, *args, **kwargs):
        # pretix does not gate control views by plugin activation: do it here
        if "pretix_crm_bridge" not in request.event.get_plugins():
            raise Http404(_("The CRM bridge plugin is not enabled for this event."))
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        enabled = {s: self.request.event.settings.get(k, as_type=bool) for s, k in (
            ("mautic", config.MAUTIC_ENABLED), ("invoiceninja", config.NINJA_ENABLED))}
        ctx["triggers"] = [(t.label, SYSTEM_NAMES[t.system], t.action, enabled[t.system]) for t in TRIGGERS]
        return ctx

    def get_success_url(self):
        return reverse("plugins:pretix_crm_bridge:event.settings", kwargs={
            "organizer": self.request.organizer.slug, "event": self.request.event.slug})


class ConsentWithdrawView(EventPermissionRequiredMixin, View):
    """Staff record that a buyer withdrew their marketing consent (e.g. asked by email); Mautic is cleaned up in the background."""
    permission = "event.orders:write"

    def post(self, request, *args, **kwargs):
        order = get_object_or_404(Order, event=request.event, code=kwargs["code"])
        if has_consent(order):
            with transaction.atomic():
                withdraw_consent(order, user=request.user)
            messages.success(request, _("The consent was withdrawn. The buyer is removed from this event's Mautic segments "
                                        "and campaigns, and marked as unsubscribed, in the background."))
        return redirect(reverse("control:event.order", kwargs={"organizer": request.organizer.slug, "event": request.event.slug,
                                                               "code": order.code}))
