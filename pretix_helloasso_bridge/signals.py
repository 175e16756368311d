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
from .config import event_platform, platform_name


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
    from .payment import PAYMENT_PROVIDERS

    return PAYMENT_PROVIDERS


@receiver(nav_event, dispatch_uid="pretix_helloasso_bridge_nav_event")
def nav_event_entry(sender, request, **kwargs):
    if not request.user.has_event_permission(request.organizer, request.event, "event.orders:read", request=request):
        return []
    linked = event_platform(request.event)
    return [{
        # the linked platform's name; before linking, a neutral entry (the page offers every configured platform)
        "label": platform_name(linked) if linked else _("External ticketing"),
        "url": reverse("plugins:pretix_helloasso_bridge:event", kwargs={"organizer": request.organizer.slug, "event": request.event.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.namespace == "plugins:pretix_helloasso_bridge",
        "icon": "exchange",
    }]


@receiver(order_info, dispatch_uid="pretix_helloasso_bridge_order_info")
def order_panel(sender, order, request, **kwargs):
    """The platform's order number, promo codes and discount of an imported order, on its page in the backend."""
    meta = order.api_meta or {}
    remote_id = meta.get("platform_order_id") or meta.get("helloasso_order_id")
    if not remote_id:
        return ""
    # imports before the neutral keys: the order's sales channel is the platform's identifier
    identifier = meta.get("platform") or (order.sales_channel.identifier if order.sales_channel_id else None)
    try:
        discount = Decimal(meta.get("discount") or meta.get("helloasso_discount") or "0")
    except InvalidOperation:
        discount = Decimal("0")
    return get_template("pretix_helloasso_bridge/order_info.html").render({
        "platform": platform_name(identifier), "remote_order_id": remote_id,
        "promo_codes": meta.get("promo_codes") or meta.get("helloasso_promo_codes") or [], "discount": discount,
        "currency": sender.currency,
    }, request=request)


@receiver(periodic_task, dispatch_uid="pretix_helloasso_bridge_periodic")
def periodic_sync(sender, **kwargs):
    from .tasks import run_periodic

    run_periodic()


@receiver(register_notification_types, dispatch_uid="pretix_helloasso_bridge_notification_types")
def notification_types(sender, **kwargs):
    from .notifications import SyncFailed

    return [SyncFailed(sender)]


def _log_platform(logentry, data, order=None):
    """The platform a log entry is about: from its data, else the order's sales channel, else the event's link."""
    identifier = data.get("provider") or data.get("source")
    if not identifier and order is not None and order.sales_channel_id:
        identifier = order.sales_channel.identifier
    if not identifier:
        identifier = event_platform(logentry.event)
    return platform_name(identifier)


class BridgeEventLogEntryType(EventLogEntryType):
    def display(self, logentry, data):
        return str(self.plain).format(platform=_log_platform(logentry, data), form=data.get("form", ""), error=data.get("error", ""))


class BridgeOrderLogEntryType(OrderLogEntryType):
    def display(self, logentry, data):
        order = logentry.content_object if logentry.content_type_id else None
        return str(self.plain).format(platform=_log_platform(logentry, data, order=order),
                                      payment=data.get("payment_id") or data.get("helloasso_payment_id", ""))


# the action types keep their historical identifiers (internal; stored in existing logs); the texts name the platform
log_entry_types.new_from_dict({
    "pretix_helloasso_bridge.sync.failed": _("{platform}: the sync failed several times in a row ({error})."),
    "pretix_helloasso_bridge.link.created": _("{platform}: the event was linked to {form}."),
    "pretix_helloasso_bridge.link.deleted": _("{platform}: the link to {form} was removed; imported data stays."),
    "pretix_helloasso_bridge.link.changed": _("{platform}: the sync options were changed."),
})(BridgeEventLogEntryType)

log_entry_types.new_from_dict({
    "pretix_helloasso_bridge.order.contested": _("{platform}: the payment {payment} is contested (chargeback)."),
    "pretix_helloasso_bridge.order.cancelled_on_helloasso": _("{platform}: items were cancelled or refunded on the platform."),
    "pretix_helloasso_bridge.order.deleted_remotely": _("{platform}: the order was deleted on the platform."),
})(BridgeOrderLogEntryType)
