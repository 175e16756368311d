"""Telling the organiser's team that the HelloAsso sync keeps failing (a subscribable pretix notification type)."""
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.base.notifications import Notification, NotificationType

ACTION_SYNC_FAILED = "pretix_helloasso_bridge.sync.failed"


class HelloAssoSyncFailed(NotificationType):
    action_type = ACTION_SYNC_FAILED
    verbose_name = _("HelloAsso: the sync keeps failing")
    required_permission = "event.orders:read"

    def build_notification(self, logentry):
        return Notification(
            event=logentry.event,
            title=_("HelloAsso orders are no longer imported"),
            detail=_("The last syncs failed: {error}").format(error=logentry.parsed_data.get("error", "")),
            url=settings.SITE_URL + reverse("plugins:pretix_helloasso_bridge:event", kwargs={
                "organizer": logentry.event.organizer.slug, "event": logentry.event.slug}),
        )
