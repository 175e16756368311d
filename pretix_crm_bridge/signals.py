"""Signal receivers of pretix_crm_bridge; they delegate to the modules that do the work and never call a service."""
from django import forms
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.template.loader import get_template
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.base import signals as base_signals
from pretix.base.logentrytypes import LogEntryType, OrderLogEntryType, log_entry_types
from pretix.base.models import OrderRefund
from pretix.base.shredder import shred_log_fields
from pretix.control.signals import event_dashboard_widgets, nav_event_settings, nav_organizer, order_info
from pretix.helpers.periodic import minimum_interval
from pretix.presale.signals import contact_form_fields, order_info as presale_order_info

from . import config, docuseal_signals, sync, triggers  # NOQA: F401 - config registers the defaults, sync the providers


@receiver(nav_organizer, dispatch_uid="pretix_crm_bridge_nav_organizer")
def nav_organizer_connections(sender, request, organizer, **kwargs):
    if not request.user.has_organizer_permission(organizer, "organizer.settings.general:write", request=request):
        return []
    return [{
        "label": _("CRM connections"),
        "url": reverse("plugins:pretix_crm_bridge:connections", kwargs={"organizer": organizer.slug}),
        "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.namespace == "plugins:pretix_crm_bridge"
        and request.resolver_match.url_name.startswith("connections"),
        "icon": "address-book",
    }]


@receiver(nav_event_settings, dispatch_uid="pretix_crm_bridge_nav_event_settings")
def nav_event_crm_settings(sender, request, **kwargs):
    if not request.user.has_event_permission(request.organizer, request.event, "event.settings.general:write", request=request):
        return []
    return [{
        "label": _("CRM bridge"),
        "url": reverse("plugins:pretix_crm_bridge:event.settings", kwargs={"organizer": request.organizer.slug, "event": request.event.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.namespace == "plugins:pretix_crm_bridge"
        and request.resolver_match.url_name == "event.settings",
    }]


@receiver(contact_form_fields, dispatch_uid="pretix_crm_bridge_contact_form_fields")
def consent_checkbox(sender, request=None, **kwargs):
    """The marketing consent checkbox, never ticked in advance; the answer is kept on the order (meta_info)."""
    if not sender.settings.get(config.MAUTIC_ENABLED, as_type=bool):
        return {}
    return {config.CONSENT_FIELD: forms.BooleanField(label=config.consent_label(sender), required=False, initial=False)}


def _make_receiver(signal_name):
    def on_order_signal(sender, order, **kwargs):
        triggers.enqueue(order, signal_name)
    on_order_signal.__name__ = f"on_{signal_name}"
    getattr(base_signals, signal_name).connect(on_order_signal, dispatch_uid=f"pretix_crm_bridge_{signal_name}", weak=False)
    return on_order_signal


# one receiver per pretix signal of the trigger map (triggers.py); they only enqueue
ORDER_RECEIVERS = {name: _make_receiver(name) for name in triggers.signals() if isinstance(getattr(base_signals, name, None), base_signals.EventPluginSignal)}


@receiver(post_save, sender=OrderRefund, dispatch_uid="pretix_crm_bridge_refund_done")
def on_refund_saved(sender, instance, **kwargs):
    """pretix has no refund signal: a refund saved as done enqueues the order (model signals are not plugin-gated: check)."""
    if instance.state != OrderRefund.REFUND_STATE_DONE:
        return
    order = instance.order
    if "pretix_crm_bridge" in order.event.get_plugins():
        triggers.enqueue(order, "refund_done")


@receiver(event_dashboard_widgets, dispatch_uid="pretix_crm_bridge_dashboard_widget")
def dashboard_widget(sender, **kwargs):
    from .health import event_counts
    html = get_template("pretix_crm_bridge/dashboard_widget.html").render({"counts": event_counts(sender)})
    return [{"content": html, "display_size": "small", "priority": 5}]


@receiver(order_info, dispatch_uid="pretix_crm_bridge_order_info")
def order_consent_panel(sender, order, request, **kwargs):
    from .sync import has_consent
    if not sender.settings.get(config.MAUTIC_ENABLED, as_type=bool):
        return ""
    return get_template("pretix_crm_bridge/order_info.html").render({
        "order": order, "request": request, "consent": has_consent(order),
        "can_change": request.user.has_event_permission(request.organizer, request.event, "event.orders:write", request=request),
    }, request=request)


@receiver(base_signals.register_data_shredders, dispatch_uid="pretix_crm_bridge_data_shredders")
def data_shredders(sender, **kwargs):
    from .consent import MarketingConsentShredder
    return MarketingConsentShredder


@receiver(presale_order_info, dispatch_uid="pretix_crm_bridge_presale_order_info")
def buyer_consent_panel(sender, order, request, **kwargs):
    """On the buyer's order page: a way to stop the news as easy as the checkbox that started them."""
    from .sync import has_consent
    if not sender.settings.get(config.MAUTIC_ENABLED, as_type=bool) or not has_consent(order):
        return ""
    return get_template("pretix_crm_bridge/presale_order_info.html").render({"order": order, "event": sender}, request=request)


@log_entry_types.new("pretix_crm_bridge.consent.withdrawn", _(
    "Marketing consent withdrawn: the buyer is removed from the event's Mautic segments and campaigns."))
class ConsentWithdrawnLogEntryType(OrderLogEntryType):
    pass


@receiver(base_signals.register_payment_providers, dispatch_uid="pretix_crm_bridge_payment_provider")
def payment_provider(sender, **kwargs):
    from .payment import InvoiceNinjaPayment
    return InvoiceNinjaPayment


@log_entry_types.new("pretix_crm_bridge.invoiceninja.payment.accepted", _(
    "Payment reconciled in Invoice Ninja: payment {payment_number} of {amount} {currency} on invoice {invoice_number} was "
    "confirmed in pretix."))
class NinjaPaymentAcceptedLogEntryType(OrderLogEntryType):
    def shred_pii(self, logentry):
        shred_log_fields(logentry, banlist=["transaction_reference"])


@log_entry_types.new("pretix_crm_bridge.invoiceninja.payment.refused", _(
    "Payment reported by Invoice Ninja not applied (payment {payment_number}, {amount} {currency}, invoice {invoice_number}): {reason}"))
class NinjaPaymentRefusedLogEntryType(OrderLogEntryType):
    def shred_pii(self, logentry):
        shred_log_fields(logentry, banlist=["transaction_reference"])


@log_entry_types.new("pretix_crm_bridge.invoiceninja.payment.unmatched", _(
    "Payment reported by Invoice Ninja not applied (payment {payment_id}, invoice {invoice_number}): {reason}"))
class NinjaPaymentUnmatchedLogEntryType(LogEntryType):
    def shred_pii(self, logentry):
        shred_log_fields(logentry, banlist=["transaction_reference"])


@log_entry_types.new("pretix_crm_bridge.invoiceninja.webhook_registered", _(
    "The payment webhook was registered in Invoice Ninja."))
class NinjaWebhookRegisteredLogEntryType(LogEntryType):
    pass


@log_entry_types.new("pretix_crm_bridge.webhook_url.regenerated", _(
    "A new CRM webhook URL was created for {system}; the previous one no longer works."))
class WebhookUrlRegeneratedLogEntryType(LogEntryType):
    pass


@receiver(base_signals.periodic_task, dispatch_uid="pretix_crm_bridge_expiry_reminders")
@minimum_interval(minutes_after_success=30)
def periodic_expiry_reminders(sender, **kwargs):
    triggers.enqueue_expiry_reminders()


@receiver(base_signals.event_copy_data, dispatch_uid="pretix_crm_bridge_event_copy")
def copy_event(sender, other, checkin_list_map=None, **kwargs):
    """pretix copies the event's settings; the field mappings may name check-in lists, which get new ids in the copy."""
    from pretix.base.datasync.utils import translate_property_mappings
    mappings = other.settings.get(config.MAUTIC_FIELD_MAPPINGS, as_type=list) or []
    if mappings:
        sender.settings.set(config.MAUTIC_FIELD_MAPPINGS, translate_property_mappings(mappings, checkin_list_map or {}))
