"""
"New prospect from Calendly" and "Meeting cancelled": pretix notification types, delivered for the organiser.

pretix's notification types are event-scoped: its ``notify`` task drops log entries without an event. Prospects belong
to the organiser, so:

- the types are registered with pretix (``register_notification_types``), so team members subscribe to them on their
  own notification settings page like to pretix's own types (the page for *all events*: a global setting);
- the log entry of the prospect (organiser-level) is handed to :func:`notify_organizer` after the commit, which finds
  the organiser's team members who may read prospects, kept notifications on, and enabled this type, and sends them
  pretix's notification email (``send_notification_mail``, pretix's template and mail queue).
"""
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django_scopes import scopes_disabled

from pretix.base.i18n import language
from pretix.base.models import LogEntry, NotificationSetting, User
from pretix.base.notifications import Notification, NotificationType
from pretix.base.services.tasks import ProfiledTask
from pretix.celery_app import app

from .sync import LOG_CREATED, LOG_MEETING_CANCELED

READ_PERMISSION = "organizer.crm_prospects:read"


class _ProspectNotification(NotificationType):
    required_permission = "event.orders:read"  # what pretix's settings page asks; delivery checks the prospects permission

    def build_notification(self, logentry):
        from .models import Prospect

        organizer = logentry.organizer
        prospect = Prospect.objects.filter(pk=logentry.object_id, organizer=organizer).first() if logentry.object_id else None
        # pretix's mail code reads .settings.mail_prefix and .slug of the notification's event; the organiser has both
        n = Notification(event=organizer, title=self.title(logentry, prospect), detail=logentry.parsed_data.get("meeting", ""),
                         url=settings.SITE_URL + reverse("plugins:pretix_crm_bridge:prospects.detail",
                                                         kwargs={"organizer": organizer.slug, "prospect": logentry.object_id}))
        if prospect:
            n.add_attribute(_("Name"), prospect.name)
            n.add_attribute(_("Email"), prospect.email)
            if prospect.phone:
                n.add_attribute(_("Phone"), prospect.phone)
        n.add_action(_("View prospect"), n.url)
        return n


class ProspectCreated(_ProspectNotification):
    action_type = LOG_CREATED
    verbose_name = _("New prospect from Calendly")

    def title(self, logentry, prospect):
        return str(_("New prospect from Calendly: {name}")).format(name=(prospect and str(prospect)) or logentry.parsed_data.get("email", ""))


class MeetingCanceled(_ProspectNotification):
    action_type = LOG_MEETING_CANCELED
    verbose_name = _("Calendly meeting cancelled by a prospect")

    def title(self, logentry, prospect):
        return str(_("Meeting cancelled: {name}")).format(name=(prospect and str(prospect)) or "")


TYPES = {t.action_type: t for t in (ProspectCreated, MeetingCanceled)}


def schedule(logentry):
    if logentry is not None and logentry.action_type in TYPES:
        transaction.on_commit(lambda: notify_organizer.apply_async(args=(logentry.pk,)))


def recipients(organizer, action_type, exclude_user=None):
    teams = [t for t in organizer.teams.all() if t.has_organizer_permission(READ_PERMISSION)]
    users = User.objects.filter(teams__in=teams, is_active=True,
                                notifications_send=True).distinct()
    if exclude_user:
        users = users.exclude(pk=exclude_user.pk)
    enabled = NotificationSetting.objects.filter(event__isnull=True, action_type=action_type, method="mail", enabled=True,
                                                 user__in=users).values_list("user_id", flat=True)
    return users.filter(pk__in=list(enabled))


@app.task(base=ProfiledTask, acks_late=True, max_retries=9, default_retry_delay=900)
@scopes_disabled()
def notify_organizer(logentry_id):
    from pretix.base.services.notifications import send_notification_mail

    logentry = LogEntry.all.select_related("organizer").filter(pk=logentry_id, event__isnull=True).first()
    if not logentry or logentry.action_type not in TYPES or not logentry.organizer:
        return
    if "pretix_crm_bridge" not in logentry.organizer.get_plugins():
        return
    ntype = TYPES[logentry.action_type](None)
    for user in recipients(logentry.organizer, logentry.action_type, exclude_user=logentry.user):
        with language(user.locale):
            send_notification_mail(ntype.build_notification(logentry), user)
