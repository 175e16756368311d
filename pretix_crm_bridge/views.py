from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import TemplateView

from pretix.base.datasync.sourcefields import get_data_fields
from pretix.base.models import Order
from pretix.base.models.datasync import MODE_OVERWRITE
from pretix.control.forms.mapping import PropertyMappingFormSet
from pretix.control.permissions import EventPermissionRequiredMixin, OrganizerPermissionRequiredMixin
from pretix.control.views.event import EventSettingsFormView, EventSettingsViewMixin
from pretix.control.views.organizer import OrganizerDetailViewMixin, OrganizerSettingsFormView

from . import config
from .connection import OK, SYSTEMS, check_connection
from .forms import CrmConnectionsForm, CrmEventSettingsForm
from .health import organizer_health
from .sync import has_consent, withdraw_consent
from .triggers import SYSTEM_ENABLED, SYSTEM_NAMES, TRIGGERS


class ConnectionsView(OrganizerSettingsFormView):
    form_class = CrmConnectionsForm
    template_name = "pretix_crm_bridge/connections.html"
    permission = "organizer.settings.general:write"

    def get_success_url(self):
        return reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": self.request.organizer.slug})

    def get_context_data(self, **kwargs):
        from .ninja_webhooks import recent_payment_log
        from .webhook_secrets import hook_url
        ctx = super().get_context_data(**kwargs)
        ctx["health"] = organizer_health(self.request.organizer)
        organizer = self.request.organizer
        if config.invoiceninja_configured(organizer):
            ctx["ninja_hook_url"] = hook_url(organizer, "invoiceninja")
            ctx["ninja_payment_log"] = recent_payment_log(organizer)
        if config.mautic_configured(organizer):
            ctx["mautic_hook_url"] = hook_url(organizer, "mautic")
        if config.docuseal_configured(organizer):
            ctx["docuseal_hook_url"] = hook_url(organizer, "docuseal")
        return ctx


class ConnectionTestView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        if kwargs["system"] not in SYSTEMS:
            raise Http404()
        outcome, message = check_connection(request.organizer, kwargs["system"])
        (messages.success if outcome == OK else messages.error)(request, message)
        return redirect(reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": request.organizer.slug}))


class WebhookUrlRegenerateView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    """A new secret in the organiser's webhook URL for a system: the old URL stops working at once."""
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        from .webhook_secrets import ENTERED_BY_HAND, regenerate
        if kwargs["system"] not in ENTERED_BY_HAND:
            raise Http404()
        regenerate(request.organizer, kwargs["system"], user=request.user)
        messages.success(request, _("A new webhook URL was created. Enter it in {system} now: the old one no longer works.").format(
            system=SYSTEM_NAMES[kwargs["system"]]))
        return redirect(reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": request.organizer.slug}))


class NinjaWebhookRegisterView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    """Registers the organiser's payment webhook URL in Invoice Ninja ("Create Payment" event), once."""
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        from pretix_integrations_core.errors import ExternalServiceError

        from .ninja_webhooks import EVENT_CREATE_PAYMENT
        from .webhook_secrets import hook_url
        organizer = request.organizer
        url = hook_url(organizer, "invoiceninja")
        try:
            # an explicit admin action like "Test connection": one short attempt, on the probe's breaker scope
            client = config.invoiceninja_client(organizer, scope_suffix="-connection-test", budget=8, max_attempts=1)
            hooks = client.list_webhooks(EVENT_CREATE_PAYMENT)
            if any(h.get("target_url") == url and not h.get("is_deleted") and not h.get("archived_at") for h in hooks):
                messages.info(request, _("Invoice Ninja already sends its payments to this pretix organizer."))
            else:
                client.create_webhook(url, EVENT_CREATE_PAYMENT)
                organizer.log_action("pretix_crm_bridge.invoiceninja.webhook_registered", user=request.user, data={})
                messages.success(request, _("Invoice Ninja now sends the payments you record there to pretix."))
        except ExternalServiceError as e:
            messages.error(request, _("The webhook could not be registered in Invoice Ninja: {error}").format(error=e))
        return redirect(reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": organizer.slug}))


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
        enabled = {s: self.request.event.settings.get(k, as_type=bool) for s, k in SYSTEM_ENABLED.items()}
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


class MauticFieldsView(EventPermissionRequiredMixin, TemplateView):
    """Extra Mautic contact fields filled from pretix data, with pretix's own property mapping editor."""
    permission = "event.settings.general:write"
    template_name = "pretix_crm_bridge/mautic_fields.html"

    def dispatch(self, request, *args, **kwargs):
        if "pretix_crm_bridge" not in request.event.get_plugins():
            raise Http404(_("The CRM bridge plugin is not enabled for this event."))
        return super().dispatch(request, *args, **kwargs)

    @cached_property
    def formset(self):
        return PropertyMappingFormSet(
            pretix_fields=get_data_fields(self.request.event, for_model="Order"), external_fields=None,
            available_modes=[MODE_OVERWRITE], prefix="mautic", data=self.request.POST if self.request.method == "POST" else None,
            initial=self.request.event.settings.get(config.MAUTIC_FIELD_MAPPINGS, as_type=list) or [],
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["formset"] = self.formset
        return ctx

    def post(self, request, *args, **kwargs):
        if not self.formset.is_valid():
            messages.error(request, _("We could not save your changes. See below for details."))
            return self.get(request, *args, **kwargs)
        mappings = [m for m in self.formset.to_property_mappings_list() if m.get("pretix_field") and m.get("external_field")]
        mappings = [{k: m.get(k) or "" for k in ("pretix_field", "external_field", "value_map", "overwrite")} for m in mappings]
        request.event.settings.set(config.MAUTIC_FIELD_MAPPINGS, mappings)
        request.event.log_action("pretix.event.settings", user=request.user, data={config.MAUTIC_FIELD_MAPPINGS: mappings})
        messages.success(request, _("Your changes have been saved."))
        return redirect(reverse("plugins:pretix_crm_bridge:event.mautic_fields", kwargs={
            "organizer": request.organizer.slug, "event": request.event.slug}))
