"""Signal receivers of pretix_helloasso_bridge; they delegate to the modules that do the work."""
from decimal import Decimal, InvalidOperation

from django.dispatch import receiver
from django.template.loader import get_template
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.base.logentrytypes import EventLogEntryType, OrderLogEntryType, log_entry_types
from pretix.base.signals import periodic_task, register_notification_types, register_payment_providers
from pretix.control.signals import nav_event, nav_organizer, order_info

from . import config  # NOQA: F401 - registers the settings defaults


@receiver(nav_organizer, dispatch_uid="pretix_helloasso_bridge_nav_organizer")
def nav_organizer_settings(sender, request, organizer, **kwargs):
    if not request.user.has_organizer_permission(organizer, "organizer.settings.general:write", request=request):
        return []
    return [{
        "label": _("HelloAsso"),
        "url": reverse("plugins:pretix_helloasso_bridge:organizer.settings", kwargs={"organizer": organizer.slug}),
        "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.url_name.startswith("organizer.")
        and not request.resolver_match.url_name.startswith(("organizer.billetweb", "organizer.weezevent"))
        and request.resolver_match.namespace == "plugins:pretix_helloasso_bridge",
        "icon": "exchange",
    }, {
        "label": _("Billetweb"),
        "url": reverse("plugins:pretix_helloasso_bridge:organizer.billetweb", kwargs={"organizer": organizer.slug}),
        "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.url_name.startswith("organizer.billetweb")
        and request.resolver_match.namespace == "plugins:pretix_helloasso_bridge",
        "icon": "exchange",
    }, {
        "label": _("Weezevent"),
        "url": reverse("plugins:pretix_helloasso_bridge:organizer.weezevent", kwargs={"organizer": organizer.slug}),
        "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.url_name.startswith("organizer.weezevent")
        and request.resolver_match.namespace == "plugins:pretix_helloasso_bridge",
        "icon": "exchange",
    }]


@receiver(register_payment_providers, dispatch_uid="pretix_helloasso_bridge_payment_provider")
def payment_provider(sender, **kwargs):
    from .payment import HelloAssoPayment

    return HelloAssoPayment


@receiver(nav_event, dispatch_uid="pretix_helloasso_bridge_nav_event")
def nav_event_entry(sender, request, **kwargs):
    if not request.user.has_event_permission(request.organizer, request.event, "event.orders:read", request=request):
        return []
    return [{
        "label": _("HelloAsso"),
        "url": reverse("plugins:pretix_helloasso_bridge:event", kwargs={"organizer": request.organizer.slug, "event": request.event.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.namespace == "plugins:pretix_helloasso_bridge",
        "icon": "exchange",
    }]


@receiver(order_info, dispatch_uid="pretix_helloasso_bridge_order_info")
def order_panel(sender, order, request, **kwargs):
    """The HelloAsso order number, promo codes and discount of an imported order, on its page in the backend."""
    meta = order.api_meta or {}
    if not meta.get("helloasso_order_id"):
        return ""
    try:
        discount = Decimal(meta.get("helloasso_discount") or "0")
    except InvalidOperation:
        discount = Decimal("0")
    return get_template("pretix_helloasso_bridge/order_info.html").render({
        "helloasso_order_id": meta["helloasso_order_id"], "promo_codes": meta.get("helloasso_promo_codes") or [], "discount": discount,
        "currency": sender.currency,
    }, request=request)


@receiver(periodic_task, dispatch_uid="pretix_helloasso_bridge_periodic")
def periodic_sync(sender, **kwargs):
    from .tasks import run_periodic

    run_periodic()


@receiver(register_notification_types, dispatch_uid="pretix_helloasso_bridge_notification_types")
def notification_types(sender, **kwargs):
    from .notifications import HelloAssoSyncFailed

    return [HelloAssoSyncFailed(sender)]


class HelloAssoEventLogEntryType(EventLogEntryType):
    def display(self, logentry, data):
        return str(self.plain).format(form=data.get("form", ""), error=data.get("error", ""))


class HelloAssoOrderLogEntryType(OrderLogEntryType):
    def display(self, logentry, data):
        return str(self.plain).format(payment=data.get("helloasso_payment_id", ""))


log_entry_types.new_from_dict({
    "pretix_helloasso_bridge.sync.failed": _("HelloAsso: the sync failed several times in a row ({error})."),
    "pretix_helloasso_bridge.link.created": _("HelloAsso: the event was linked to the form {form}."),
    "pretix_helloasso_bridge.link.deleted": _("HelloAsso: the link to the form {form} was removed; imported data stays."),
    "pretix_helloasso_bridge.link.changed": _("HelloAsso: the sync options were changed."),
})(HelloAssoEventLogEntryType)

log_entry_types.new_from_dict({
    "pretix_helloasso_bridge.order.contested": _("HelloAsso: the payment {payment} is contested (chargeback)."),
    "pretix_helloasso_bridge.order.cancelled_on_helloasso": _("HelloAsso: items were cancelled or refunded on HelloAsso."),
})(HelloAssoOrderLogEntryType)


class BridgeOrderLogEntryType(OrderLogEntryType):
    pass


log_entry_types.new_from_dict({
    "pretix_helloasso_bridge.order.deleted_remotely": _("Ticketing bridge: the order was deleted on the ticketing platform."),
})(BridgeOrderLogEntryType)
