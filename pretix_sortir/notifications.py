"""Telling the organiser what needs a person (a refused APRAS token, a grant to cancel with APRAS, ...), through pretix's log and notifications."""
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.base.notifications import Notification, NotificationType
from pretix.helpers.urls import mainreverse_absolute

from pretix_integrations_core.breaker import shared_cache

ACTION_CONFIG_PROBLEM = "pretix_sortir.apras.configuration_problem"
ACTION_RETAKE_FAILED = "pretix_sortir.usage.retake_failed"
ACTION_APRAS_CANCEL_BY_HAND = "pretix_sortir.usage.apras_cancel_by_hand"
ACTION_APRAS_CHECK_BY_HAND = "pretix_sortir.usage.apras_check_by_hand"
ACTION_UNRESOLVED_ARCHIVED = "pretix_sortir.retention.unresolved_archived"
THROTTLE_SECONDS = 600


def report_configuration_problem(event, error):
    """Log (and so notify) at most once every 10 minutes per organiser."""
    if shared_cache().add(f"pretix_sortir:config_problem:{event.organizer_id}", 1, timeout=THROTTLE_SECONDS):
        event.log_action(ACTION_CONFIG_PROBLEM, data={"error": str(error)})


class AprasConfigurationProblem(NotificationType):
    action_type = ACTION_CONFIG_PROBLEM
    verbose_name = _("Sortir!: APRAS refused the token or is not configured")
    required_permission = "event.settings.general:write"

    def build_notification(self, logentry):
        return Notification(
            event=logentry.event,
            title=_("Sortir! card checks are failing: APRAS refused our credentials"),
            detail=_("Buyers currently see “temporarily unavailable”. Check the APRAS URL and token in the organizer's Sortir! settings."),
            url=settings.SITE_URL + reverse("plugins:pretix_sortir:organizer.settings", kwargs={"organizer": logentry.event.organizer.slug}),
        )


class SortirOrderNotification(NotificationType):
    """A Sortir! entry of an order's log that needs the organiser: the notification links to the order."""
    required_permission = "event.orders:read"

    def __init__(self, event, action_type, verbose_name, title, detail):
        self._action_type, self._verbose_name, self._title, self._detail = action_type, verbose_name, title, detail
        super().__init__(event)

    @property
    def action_type(self):
        return self._action_type

    @property
    def verbose_name(self):
        return self._verbose_name

    def build_notification(self, logentry):
        order, data = logentry.content_object, logentry.parsed_data
        n = Notification(
            event=logentry.event,
            title=str(self._title).format(code=order.code if order else "?"),
            detail=str(self._detail).format(position=data.get("position") or "?", last4=data.get("last4", ""),
                                            grant_id=data.get("grant_id") or "?"),
            url=mainreverse_absolute("control:event.order", kwargs={
                "organizer": logentry.event.organizer.slug, "event": logentry.event.slug, "code": order.code,
            }) if order else None,
        )
        n.add_attribute(_("Event"), str(logentry.event.name))
        if order:
            n.add_attribute(_("Order code"), order.code)
        return n


class UnresolvedGrantsArchived(NotificationType):
    action_type = ACTION_UNRESOLVED_ARCHIVED
    verbose_name = _("Sortir!: grants still failed or unknown were archived at the end of the retention period")
    required_permission = "event.orders:read"

    def build_notification(self, logentry):
        data = logentry.parsed_data
        n = Notification(
            event=logentry.event,
            title=_("Sortir! card usages archived with unresolved grants"),
            detail=_("The retention period of this event's Sortir! card usages has ended and they were archived, although "
                     "{failed} grant(s) had failed and the outcome of {unknown} grant(s) was unknown. If these tickets "
                     "should count with APRAS, settle them with APRAS by hand.").format(
                failed=data.get("failed", 0), unknown=data.get("unknown", 0)),
            url=mainreverse_absolute("control:event.index", kwargs={
                "organizer": logentry.event.organizer.slug, "event": logentry.event.slug}),
        )
        if data.get("orders"):
            n.add_attribute(_("Orders"), ", ".join(data["orders"]))
        return n


def order_notification_types(event):
    """The notifications of order events the organiser must act on (registered with pretix by signals.py)."""
    return [
        SortirOrderNotification(
            event, ACTION_RETAKE_FAILED,
            _("Sortir!: a card could not be taken back for a reactivated, extended or late-paid order"),
            _("Order {code}: a Sortir! card could not be taken back"),
            _("The card •••• {last4} of ticket #{position} was released when the order expired or was cancelled, and "
              "another order now uses it for the same date. The ticket has no card: please contact the buyer."),
        ),
        SortirOrderNotification(
            event, ACTION_APRAS_CANCEL_BY_HAND,
            _("Sortir!: a ticket whose grant was already sent to APRAS was cancelled, changed or released"),
            _("Order {code}: tell APRAS by hand that a Sortir! grant is cancelled"),
            _("The grant of card •••• {last4} (ticket #{position}, APRAS id {grant_id}) was already sent to APRAS, and "
              "the ticket was cancelled, changed to another product or its card released. APRAS offers no cancellation "
              "through its interface: tell APRAS by hand."),
        ),
        SortirOrderNotification(
            event, ACTION_APRAS_CHECK_BY_HAND,
            _("Sortir!: a ticket whose grant outcome is unknown was cancelled, changed or released"),
            _("Order {code}: check with APRAS whether a Sortir! grant arrived"),
            _("The outcome of the grant of card •••• {last4} (ticket #{position}) is unknown, and the ticket was "
              "cancelled, changed to another product or its card released. Check with APRAS whether the grant "
              "arrived; if it did, tell APRAS by hand that it is cancelled."),
        ),
        UnresolvedGrantsArchived(event),
    ]
