"""Receivers of the Calendly part; imported by ``pretix_crm_bridge.signals``. They only delegate."""
from django.dispatch import receiver
from django.urls import reverse
from django.utils.translation import gettext_lazy as _, pgettext_lazy

from pretix.base.logentrytypes import LogEntryType, log_entry_types
from pretix.base.permissions import OPTS_READ_WRITE, PermissionGroup
from pretix.base.signals import (
    order_paid, order_placed, periodic_task, register_data_shredders, register_global_settings, register_multievent_data_exporters, register_notification_types,
    register_organizer_permission_groups,
)
from pretix.control.signals import nav_organizer
from pretix.helpers.periodic import minimum_interval

from .models import Prospect

PERMISSION_GROUP = "organizer.crm_prospects"


@receiver(register_organizer_permission_groups, dispatch_uid="pretix_crm_bridge_permission_groups")
def permission_groups(sender, **kwargs):
    return [PermissionGroup(
        name=PERMISSION_GROUP, label=_("CRM prospects"), actions=["read", "write"], options=OPTS_READ_WRITE,
        help_text=_("Prospects from Calendly bookings are personal data: give read access to those who may see orders, and "
                    "change access to those who may change orders."),
    )]


@receiver(register_global_settings, dispatch_uid="pretix_crm_bridge_calendly_global_settings")
def global_settings(sender, **kwargs):
    """The Calendly OAuth application of this pretix, on the administrator's global settings page (pretix.cfg wins)."""
    from collections import OrderedDict

    from django import forms

    from pretix.helpers.urls import mainreverse_absolute

    from pretix_integrations_core.forms import EncryptingSecretField

    from .config import GLOBAL_PREFIX

    callback = mainreverse_absolute("plugins:pretix_crm_bridge:calendly.callback")  # as the Connect view sends it
    return OrderedDict([
        (GLOBAL_PREFIX + "calendly_client_id", forms.CharField(
            label=_("Calendly OAuth client id"), required=False,
            help_text=_("Register an OAuth application at Calendly with the redirect URI {url}").format(url=callback))),
        (GLOBAL_PREFIX + "calendly_client_secret", EncryptingSecretField(label=_("Calendly OAuth client secret"))),
        (GLOBAL_PREFIX + "calendly_webhook_signing_key", EncryptingSecretField(
            label=_("Calendly webhook signing key"), help_text=_("The OAuth application's webhook signing key (optional)."))),
    ])


@receiver(nav_organizer, dispatch_uid="pretix_crm_bridge_calendly_nav")
def nav(sender, request, organizer, **kwargs):
    items = []
    url = request.resolver_match
    if request.user.has_organizer_permission(organizer, PERMISSION_GROUP + ":read", request=request):
        new = Prospect.objects.filter(organizer=organizer, status=Prospect.NEW).count()
        label = _("Prospects")
        items.append({
            "label": str(label) + (f" ({new} " + str(pgettext_lazy("prospects", "new")) + ")" if new else ""),
            "url": reverse("plugins:pretix_crm_bridge:prospects", kwargs={"organizer": organizer.slug}),
            "active": bool(url) and url.namespace == "plugins:pretix_crm_bridge" and url.url_name.startswith("prospects"),
            "icon": "user-plus",
        })
    if request.user.has_organizer_permission(organizer, "organizer.settings.general:write", request=request):
        items.append({
            "label": "Calendly",
            "url": reverse("plugins:pretix_crm_bridge:calendly", kwargs={"organizer": organizer.slug}),
            "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
            "active": bool(url) and url.namespace == "plugins:pretix_crm_bridge" and url.url_name.startswith("calendly"),
            "icon": "calendar",
        })
    return items


@receiver(periodic_task, dispatch_uid="pretix_crm_bridge_calendly_periodic")
def periodic_sync(sender, **kwargs):
    from .tasks import run_periodic
    run_periodic()


@receiver(periodic_task, dispatch_uid="pretix_crm_bridge_calendly_retention")
@minimum_interval(minutes_after_success=60 * 6)
def periodic_retention(sender, **kwargs):
    from .shredder import purge_lost
    purge_lost()


@receiver(register_notification_types, dispatch_uid="pretix_crm_bridge_calendly_notification_types")
def notification_types(sender, **kwargs):
    from .notifications import TYPES
    return [t(sender) for t in TYPES.values()]


@receiver(register_multievent_data_exporters, dispatch_uid="pretix_crm_bridge_prospect_exporter")
def exporters(sender, **kwargs):
    from .exporters import ProspectExporter
    return ProspectExporter


@receiver(register_data_shredders, dispatch_uid="pretix_crm_bridge_prospect_shredder")
def shredders(sender, **kwargs):
    from .shredder import ProspectShredder
    return ProspectShredder


@receiver(order_placed, dispatch_uid="pretix_crm_bridge_prospect_placed")
def on_order_placed(sender, order, **kwargs):
    from .conversion import convert_for_order
    convert_for_order(order)


@receiver(order_paid, dispatch_uid="pretix_crm_bridge_prospect_paid")
def on_order_paid(sender, order, **kwargs):
    from .conversion import convert_for_order
    convert_for_order(order)


class ProspectLogEntryType(LogEntryType):
    def display(self, logentry, data):
        statuses = dict(Prospect.STATUSES)
        values = {k: (str(statuses.get(v, v)) if k in ("old", "new") else v) for k, v in (data or {}).items() if isinstance(v, (str, int))}
        try:
            return str(self.plain).format_map(_Default(values))
        except (ValueError, KeyError):
            return str(self.plain)


class _Default(dict):
    def __missing__(self, key):
        return ""


log_entry_types.new_from_dict({
    "pretix_crm_bridge.prospect.created": _("Prospect created from a Calendly booking: {meeting}."),
    "pretix_crm_bridge.prospect.meeting_added": _("Booked another Calendly meeting: {meeting}."),
    "pretix_crm_bridge.prospect.meeting_canceled": _("Calendly meeting cancelled: {meeting}."),
    "pretix_crm_bridge.prospect.meeting_rescheduled": _("Calendly meeting rescheduled: {meeting}."),
    "pretix_crm_bridge.prospect.status": _("Prospect status changed from {old} to {new}."),
    "pretix_crm_bridge.prospect.note": _("Note added to the prospect."),
    "pretix_crm_bridge.prospect.changed": _("Prospect details changed."),
    "pretix_crm_bridge.prospect.consent_given": _("Marketing consent given in the Calendly booking {meeting}."),
    "pretix_crm_bridge.prospect.consent_withdrawn": _("Marketing consent refused in the Calendly booking {meeting}."),
    "pretix_crm_bridge.prospect.converted": _("Prospect converted: order {order} of {event}."),
    "pretix_crm_bridge.prospect.deleted": _("A prospect was deleted ({reason})."),
    "pretix_crm_bridge.prospect.mautic": _("Sent to Mautic as {label} (segments {segments})."),
    "pretix_crm_bridge.prospect.mautic_failed": _("Could not be sent to Mautic: {error}"),
    "pretix_crm_bridge.calendly.connected": _("Calendly connected ({account})."),
    "pretix_crm_bridge.calendly.disconnected": _("Calendly disconnected ({account})."),
    "pretix_crm_bridge.calendly.options": _("Calendly sync options changed."),
})(ProspectLogEntryType)
