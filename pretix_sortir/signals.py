"""Signal receivers of pretix_sortir; they delegate to the modules that do the work."""
from django.dispatch import receiver
from django.template.loader import get_template
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _, pgettext_lazy

from pretix.base.logentrytypes import EventLogEntryType, OrderLogEntryType, log_entry_types
from pretix.base.signals import (
    event_copy_data, item_copy_data, order_canceled, order_changed, order_denied, order_expired, order_expiry_changed, order_import_columns, order_paid,
    order_placed, order_reactivated, order_split, periodic_task, register_data_exporters, register_data_shredders, register_notification_types, validate_order,
)
from pretix.control.signals import item_forms, nav_event, nav_organizer, order_info
from pretix.helpers.periodic import minimum_interval
from pretix.presale.signals import html_head, process_request, question_form_fields, question_form_fields_overrides

from . import config  # NOQA: F401 - registers the settings defaults
from . import missing  # NOQA: F401 - registers the event setting and log entry types
from . import lifecycle
from .checkout import FIELD_NAME, RequestBinding, card_field_for
from .holds import requires_card
from .notifications import ACTION_CONFIG_PROBLEM, ACTION_UNRESOLVED_ARCHIVED, AprasConfigurationProblem
from .products import SortirItemForm, copy_item_flags


@receiver(nav_organizer, dispatch_uid="pretix_sortir_nav_organizer")
def nav_organizer_settings(sender, request, organizer, **kwargs):
    if not request.user.has_organizer_permission(organizer, "organizer.settings.general:write", request=request):
        return []
    return [{
        "label": _("Sortir!"),
        "url": reverse("plugins:pretix_sortir:organizer.settings", kwargs={"organizer": organizer.slug}),
        "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.url_name.startswith("organizer.")
        and request.resolver_match.namespace == "plugins:pretix_sortir",
        "icon": "ticket",
    }]


@receiver(nav_event, dispatch_uid="pretix_sortir_nav_event")
def nav_event_entries(sender, request, **kwargs):
    def allowed(perm):
        return request.user.has_event_permission(request.organizer, request.event, perm, request=request)

    kw = {"organizer": request.organizer.slug, "event": request.event.slug}
    url_name = request.resolver_match.url_name if request.resolver_match else ""
    ours = bool(request.resolver_match) and request.resolver_match.namespace == "plugins:pretix_sortir"
    children = []
    if allowed("event.items:write"):
        children.append({"label": _("Products"), "url": reverse("plugins:pretix_sortir:products", kwargs=kw),
                         "active": ours and url_name == "products"})
    if allowed("event.orders:read"):
        children.append({"label": _("Card usages"), "url": reverse("plugins:pretix_sortir:usages", kwargs=kw),
                         "active": ours and url_name.startswith("usages")})
    if allowed("event.settings.general:write"):
        children.append({"label": _("Settings"), "url": reverse("plugins:pretix_sortir:event.settings", kwargs=kw),
                         "active": ours and url_name == "event.settings"})
    if not children:
        return []
    return [{"label": _("Sortir!"), "url": children[0]["url"], "active": ours, "icon": "ticket", "children": children}]


@receiver(order_info, dispatch_uid="pretix_sortir_order_info")
def order_panel(sender, order, request, **kwargs):
    from .models import CardUsage

    usages = list(order.sortir_usages.select_related("order_position__item").order_by("order_position__positionid", "created"))
    if not usages:
        return ""
    return get_template("pretix_sortir/order_info.html").render({
        "usages": usages, "request": request,
        "can_resend": request.user.has_event_permission(request.organizer, request.event, "event.orders:write", request=request),
        "resendable": (CardUsage.GRANT_FAILED, CardUsage.GRANT_UNKNOWN),
        "missing": CardUsage.MISSING,
        "attachable": order.status in (order.STATUS_PENDING, order.STATUS_PAID),
    }, request=request)


# -- products --------------------------------------------------------------------------------------

@receiver(item_forms, dispatch_uid="pretix_sortir_item_forms")
def product_form(sender, request, item, **kwargs):
    return SortirItemForm(event=sender, item=item, data=request.POST if request.method == "POST" else None, prefix="sortir")


@receiver(item_copy_data, dispatch_uid="pretix_sortir_item_copy")
def copy_product(sender, source, target, **kwargs):
    copy_item_flags(source, target, sender)


@receiver(event_copy_data, dispatch_uid="pretix_sortir_event_copy")
def copy_event(sender, other, item_map, variation_map, **kwargs):
    for old_pk, new_item in item_map.items():
        copy_item_flags(other.items.get(pk=old_pk), new_item, sender, variation_map=variation_map)


# -- checkout --------------------------------------------------------------------------------------

@receiver(question_form_fields, dispatch_uid="pretix_sortir_question_form_fields")
def card_question(sender, position, **kwargs):
    if not requires_card(sender, position.item_id, position.variation_id):
        return {}
    field = card_field_for(sender, position)
    return {FIELD_NAME: field} if field else {}


@receiver(question_form_fields_overrides, dispatch_uid="pretix_sortir_question_form_overrides")
def card_question_request(sender, position, request, **kwargs):
    return {FIELD_NAME: {"validators": [RequestBinding(request)]}}


@receiver(html_head, dispatch_uid="pretix_sortir_html_head")
def checkout_script(sender, request, **kwargs):
    if getattr(request, "pci_dss_payment_page", False):
        return ""
    match = request.resolver_match
    if not match or "checkout" not in (match.url_name or ""):
        return ""
    return format_html('<script type="text/javascript" src="{}" defer></script>', static("pretix_sortir/checkout.js"))


@receiver(validate_order, dispatch_uid="pretix_sortir_validate_order")
def check_cards_before_order(sender, positions, **kwargs):
    lifecycle.check_cart_before_order(sender, positions)


# -- order lifecycle -------------------------------------------------------------------------------

@receiver(order_placed, dispatch_uid="pretix_sortir_order_placed")
def on_order_placed(sender, order, **kwargs):
    lifecycle.bind_order(order)


@receiver(order_paid, dispatch_uid="pretix_sortir_order_paid")
def on_order_paid(sender, order, **kwargs):
    lifecycle.mark_paid(order)


@receiver(order_canceled, dispatch_uid="pretix_sortir_order_canceled")
def on_order_canceled(sender, order, **kwargs):
    lifecycle.release_order(order, "canceled")


@receiver(order_expired, dispatch_uid="pretix_sortir_order_expired")
def on_order_expired(sender, order, **kwargs):
    lifecycle.release_order(order, "expired")


@receiver(order_denied, dispatch_uid="pretix_sortir_order_denied")
def on_order_denied(sender, order, **kwargs):
    lifecycle.release_order(order, "denied")


@receiver(order_changed, dispatch_uid="pretix_sortir_order_changed")
def on_order_changed(sender, order, **kwargs):
    lifecycle.release_changed_positions(order)


@receiver(order_split, dispatch_uid="pretix_sortir_order_split")
def on_order_split(sender, original, split_order, **kwargs):
    lifecycle.follow_split(original, split_order)


@receiver(process_request, dispatch_uid="pretix_sortir_buyer_change")
def refuse_buyer_change(sender, request, **kwargs):
    return missing.refuse_buyer_change(sender, request)


@receiver(order_import_columns, dispatch_uid="pretix_sortir_import_columns")
def import_columns(sender, **kwargs):
    from .importing import SortirCardColumn
    return [SortirCardColumn(sender)]


@receiver(order_reactivated, dispatch_uid="pretix_sortir_order_reactivated")
def on_order_reactivated(sender, order, **kwargs):
    lifecycle.reactivate_order(order)


# Paths where an order comes back or a ticket stops needing its card. (order_paid, above, also takes back the cards
# of an expired order paid late: pretix sends no order_reactivated then.)

@receiver(order_expiry_changed, dispatch_uid="pretix_sortir_order_expiry_changed")
def on_order_expiry_changed(sender, order, **kwargs):
    lifecycle.extend_order(order)


@receiver(order_changed, dispatch_uid="pretix_sortir_order_changed_settle")
def on_order_changed_settle(sender, order, **kwargs):
    # Runs after the order_changed receiver above: whatever the release rule, no grant for a ticket that needs no card.
    lifecycle.settle_changed_positions(order)


@receiver(register_notification_types, dispatch_uid="pretix_sortir_notification_types_orders")
def order_notification_types(sender, **kwargs):
    from .notifications import order_notification_types
    return order_notification_types(sender)


@receiver(periodic_task, dispatch_uid="pretix_sortir_periodic")
def periodic(sender, **kwargs):
    from .tasks import retry_due_grants
    retry_due_grants.apply_async()


@receiver(periodic_task, dispatch_uid="pretix_sortir_retention")
@minimum_interval(minutes_after_success=12 * 60)
def periodic_retention(sender, **kwargs):
    from .tasks import apply_retention_all
    apply_retention_all.apply_async()


@receiver(register_data_exporters, dispatch_uid="pretix_sortir_exporter")
def exporter(sender, **kwargs):
    from .exporters import SortirUsageExporter
    return SortirUsageExporter


@receiver(register_data_shredders, dispatch_uid="pretix_sortir_shredder")
def shredder(sender, **kwargs):
    from .privacy import SortirDataShredder
    return SortirDataShredder


@receiver(register_notification_types, dispatch_uid="pretix_sortir_notification_types")
def notification_types(sender, **kwargs):
    return [AprasConfigurationProblem(sender)]


# -- log display -----------------------------------------------------------------------------------

#: the reason codes stored in log entries (``data["reason"]``), translated when the log is shown
LOG_REASONS = {
    "canceled": pgettext_lazy("sortir_reason", "order canceled"),
    "order_canceled": pgettext_lazy("sortir_reason", "order canceled"),
    "expired": pgettext_lazy("sortir_reason", "order expired"),
    "denied": pgettext_lazy("sortir_reason", "order denied"),
    "refunded": pgettext_lazy("sortir_reason", "order refunded"),
    "order_not_paid": pgettext_lazy("sortir_reason", "order not paid"),
    "position_canceled": pgettext_lazy("sortir_reason", "ticket canceled"),
    "position_changed": pgettext_lazy("sortir_reason", "ticket changed"),
    "changed": pgettext_lazy("sortir_reason", "ticket changed"),
    "split": pgettext_lazy("sortir_reason", "ticket moved to another order"),
    "no_card_required": pgettext_lazy("sortir_reason", "the ticket no longer needs a Sortir! card"),
    "testmode": pgettext_lazy("sortir_reason", "test mode"),
}


def display_reason(code):
    """A reason code in the reader's language; a code this version does not know is shown as it was stored."""
    if not code:
        return ""
    return str(LOG_REASONS.get(code, str(code).replace("_", " ")))


class SortirOrderLogEntryType(OrderLogEntryType):
    def display(self, logentry, data):
        return str(self.plain).format(position=data.get("position") or "?", last4=data.get("last4", ""),
                                      reason=display_reason(data.get("reason")), error=data.get("error", ""),
                                      grant_id=data.get("grant_id", ""))


log_entry_types.new_from_dict({
    lifecycle.LOG_PREFIX + "used": _("Sortir! grant sent to APRAS for card •••• {last4} (ticket #{position}, APRAS id {grant_id})."),
    lifecycle.LOG_PREFIX + "grant_retry": _("Sortir! grant for card •••• {last4} (ticket #{position}) failed and will be retried: {error}"),
    lifecycle.LOG_PREFIX + "grant_unknown": _("Sortir! grant for card •••• {last4} (ticket #{position}): no answer from APRAS, "
                                              "the outcome is unknown. Check with APRAS before sending it again. {error}"),
    lifecycle.LOG_PREFIX + "grant_failed": _("Sortir! grant for card •••• {last4} (ticket #{position}) failed: {error}"),
    lifecycle.LOG_PREFIX + "grant_resend": _("Sortir! grant for card •••• {last4} sent again on request."),
    lifecycle.LOG_PREFIX + "grant_interrupted": _("Sortir! grant for card •••• {last4} (ticket #{position}): the sending was "
                                                  "interrupted before APRAS's answer was recorded, the outcome is unknown. "
                                                  "Check with APRAS, then send it again or mark it as done."),
    lifecycle.LOG_PREFIX + "grant_marked_done": _("Sortir! grant for card •••• {last4} (ticket #{position}) marked as done "
                                                  "by hand (confirmed with APRAS, no grant sent)."),
    lifecycle.LOG_PREFIX + "grant_withdrawn": _("Sortir! grant for card •••• {last4} (ticket #{position}) not sent: "
                                                "the ticket can no longer receive one ({reason})."),
    lifecycle.LOG_PREFIX + "released": _("Sortir! card •••• {last4} of ticket #{position} released ({reason})."),
    lifecycle.LOG_PREFIX + "retaken": _("Sortir! card •••• {last4} of ticket #{position} taken back after reactivation."),
    lifecycle.LOG_PREFIX + "retake_failed": _("Sortir! card •••• {last4} of ticket #{position} could not be taken back: "
                                              "it is now used by another order. Please contact the buyer."),
    lifecycle.LOG_PREFIX + "retaken_paid": _("Sortir! card •••• {last4} of ticket #{position} taken back: the order was paid "
                                             "after its card had been released (e.g. a late payment of an expired order)."),
    lifecycle.LOG_PREFIX + "retaken_extended": _("Sortir! card •••• {last4} of ticket #{position} taken back: the expired "
                                                 "order got a new payment deadline."),
    lifecycle.LOG_PREFIX + "apras_cancel_by_hand": _("Sortir! grant for card •••• {last4} (ticket #{position}, APRAS id {grant_id}) "
                                                     "was already sent, and the ticket is now cancelled, changed or its card "
                                                     "released. APRAS has no cancellation endpoint: tell APRAS by hand."),
    lifecycle.LOG_PREFIX + "apras_check_by_hand": _("Sortir! grant for card •••• {last4} (ticket #{position}): its outcome is "
                                                    "unknown, and the ticket is now cancelled, changed or its card released. "
                                                    "Check with APRAS whether it arrived; if so, tell APRAS by hand."),
})(SortirOrderLogEntryType)


class SortirCardsLogEntryType(OrderLogEntryType):
    """Entries that cover several cards of one order: ``data = {"cards": [{"position", "last4"}, ...]}``."""

    def display(self, logentry, data):
        cards = ", ".join(_("ticket #{position}: •••• {last4}").format(**c) for c in data.get("cards", []))
        return str(self.plain).format(cards=cards)


log_entry_types.new_from_dict({
    lifecycle.LOG_PREFIX + "validated_many": _("Sortir! cards validated with the order ({cards})."),
    lifecycle.LOG_PREFIX + "grant_pending_many": _("Order paid: Sortir! grants queued for APRAS ({cards})."),
    lifecycle.LOG_PREFIX + "grant_skipped_testmode_many": _("Test mode: no Sortir! grant is sent to APRAS ({cards})."),
})(SortirCardsLogEntryType)


class SortirRetentionLogEntryType(EventLogEntryType):
    def display(self, logentry, data):
        return str(self.plain).format(failed=data.get("failed", 0), unknown=data.get("unknown", 0),
                                      orders=", ".join(data.get("orders", [])) or "-")


log_entry_types.new_from_dict({
    ACTION_UNRESOLVED_ARCHIVED: _("Sortir! card usages archived at the end of the retention period with unresolved grants: "
                                  "{failed} failed, {unknown} with an unknown outcome (orders: {orders})."),
})(SortirRetentionLogEntryType)


@log_entry_types.new(ACTION_CONFIG_PROBLEM, pgettext_lazy("sortir", "Sortir!: APRAS refused the token or is not configured."))
class SortirConfigProblemLogEntryType(EventLogEntryType):
    pass
