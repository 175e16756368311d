from django.utils.translation import gettext_lazy as _

from pretix_integrations_core import __version__

try:
    from pretix.base.plugins import PLUGIN_LEVEL_EVENT_ORGANIZER_HYBRID, PluginConfig
except ImportError:
    raise RuntimeError("Please use pretix 2026.8 or above to run this plugin!")


class CrmBridgeApp(PluginConfig):
    default = True
    name = "pretix_crm_bridge"
    verbose_name = _("CRM bridge")

    class PretixPluginMeta:
        name = _("CRM bridge")
        author = "pretix-fr-integrations"
        version = __version__
        category = "INTEGRATION"
        description = _(
            "Send your orders and customers to the tools you already use: Mautic (contacts, segments, campaigns), "
            "Invoice Ninja (clients, invoices, payments) and DocuSeal (signature requests), and turn Calendly "
            "bookings into prospects that become customers when they buy."
        )
        visible = True
        restricted = False
        # Event and organiser, as Sortir!: the connections are organiser settings with their own page in the
        # organiser's menu, which pretix only gives to plugins that can be active on an organiser.
        level = PLUGIN_LEVEL_EVENT_ORGANIZER_HYBRID
        compatibility = "pretix>=2026.8.0"

    def ready(self):
        from . import signals  # NOQA

    def installed(self, event_or_organizer):
        from pretix_integrations_core.plugins import enable_for_organizer

        enable_for_organizer(self.name, event_or_organizer)
