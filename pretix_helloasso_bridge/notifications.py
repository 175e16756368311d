"""Telling the organiser's team that the sync with the ticketing platform keeps failing (a subscribable pretix notification type)."""
from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.base.notifications import Notification, NotificationType

from .config import event_platform, platform_name

ACTION_SYNC_FAILED = "pretix_helloasso_bridge.sync.failed"


class SyncFailed(NotificationType):
    action_type = ACTION_SYNC_FAILED
    verbose_name = _("Ticketing platform: the sync keeps failing")
    required_permission = "event.orders:read"

    def build_notification(self, logentry):
        data = logentry.parsed_data
        platform = platform_name(data.get("provider") or event_platform(logentry.event))
        return Notification(
            event=logentry.event,
            title=_("{platform} orders are no longer imported").format(platform=platform),
            detail=_("The last syncs failed: {error}").format(error=data.get("error", "")),
            url=settings.SITE_URL + reverse("plugins:pretix_helloasso_bridge:event", kwargs={
                "organizer": logentry.event.organizer.slug, "event": logentry.event.slug}),
        )
