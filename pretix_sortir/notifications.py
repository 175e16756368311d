"""Telling the organiser about a refused APRAS token, through pretix's log and notifications."""
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.base.notifications import Notification, NotificationType

from pretix_integrations_core.breaker import shared_cache

ACTION_CONFIG_PROBLEM = "pretix_sortir.apras.configuration_problem"
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


ACTION_CARD_REFUSED = "pretix_sortir.usage.deferred_refused"


class AprasCardRefused(NotificationType):
    """Degraded mode: a card accepted unchecked while APRAS was down was refused by APRAS later."""
    action_type = ACTION_CARD_REFUSED
    verbose_name = _("Sortir! card refused")
    required_permission = "event.orders:read"

    def build_notification(self, logentry):
        from .deferred_checks import REASONS

        order = logentry.content_object
        data = logentry.parsed_data
        n = Notification(
            event=logentry.event,
            title=_("Sortir! card refused: order {code}").format(code=order.code),
            detail=_("APRAS refused the Sortir! card •••• {last4} (ticket #{position}) that could not be checked when "
                     "the order was placed: {reason}. The order waits for your approval: approve or deny it.").format(
                last4=data.get("last4", ""), position=data.get("position") or "?",
                reason=REASONS.get(data.get("reason"), data.get("reason", ""))),
            url=settings.SITE_URL + reverse("control:event.order", kwargs={
                "organizer": logentry.event.organizer.slug, "event": logentry.event.slug, "code": order.code}),
        )
        n.add_attribute(_("Order code"), order.code)
        return n
