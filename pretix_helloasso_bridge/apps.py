from django.utils.translation import gettext_lazy as _

from pretix_integrations_core import __version__

try:
    from pretix.base.plugins import PLUGIN_LEVEL_EVENT_ORGANIZER_HYBRID, PluginConfig
except ImportError:
    raise RuntimeError("Please use pretix 2026.8 or above to run this plugin!")


class HelloAssoBridgeApp(PluginConfig):
    default = True
    name = "pretix_helloasso_bridge"
    verbose_name = _("External ticketing bridge (HelloAsso, Billetweb, Weezevent)")

    class PretixPluginMeta:
        name = _("External ticketing bridge (HelloAsso, Billetweb, Weezevent)")
        author = "pretix-fr-integrations"
        version = __version__
        category = "INTEGRATION"
        description = _(
            "Import an event or form of HelloAsso, Billetweb or Weezevent (rates, custom fields, orders and refunds) into "
            "this event, so that you can sell on that platform and still run check-in, lists and exports in pretix."
        )
        visible = True
        restricted = False
        # Event and organiser, as Sortir!: the HelloAsso account is an organiser setting with its own page in the
        # organiser's menu, which pretix only gives to plugins that can be active on an organiser.
        level = PLUGIN_LEVEL_EVENT_ORGANIZER_HYBRID
        compatibility = "pretix>=2026.8.0"

    def ready(self):
        from . import signals  # NOQA

    def installed(self, event_or_organizer):
        from pretix_integrations_core.plugins import enable_for_organizer

        enable_for_organizer(self.name, event_or_organizer)
