from django.utils.translation import gettext_lazy as _

from pretix_integrations_core import __version__

try:
    from pretix.base.plugins import PLUGIN_LEVEL_EVENT_ORGANIZER_HYBRID, PluginConfig
except ImportError:
    raise RuntimeError("Please use pretix 2026.8 or above to run this plugin!")


class SortirApp(PluginConfig):
    default = True
    name = "pretix_sortir"
    verbose_name = _("Sortir! social tariff")

    class PretixPluginMeta:
        name = _("Sortir! social tariff")
        author = "pretix-fr-integrations"
        version = __version__
        category = "FEATURE"
        description = _(
            "Sell reduced-price tickets to holders of a Sortir! (KorriGo) card: every ticket of a flagged product "
            "asks for its own card number, checked live with APRAS, used once per event and reported to APRAS "
            "once the order is paid."
        )
        visible = True
        restricted = False
        # Event and organiser: the APRAS address and token are organiser settings, with their own page in the
        # organiser's menu (pretix only gives organiser-level plugins that menu). Enabling it on an event enables it
        # for the organiser too (pretix's event plugin page does so); migration 0003 did it for existing events.
        level = PLUGIN_LEVEL_EVENT_ORGANIZER_HYBRID
        compatibility = "pretix>=2026.8.0"
        settings_links = [
            ((_("Sortir!"), _("Products")), "plugins:pretix_sortir:products", {}),  # on the event's plugin page
            ((_("Sortir!"), _("APRAS connection")), "plugins:pretix_sortir:organizer.settings", {}),  # organiser's
        ]
        navigation_links = [
            ((_("Sortir!"), _("Card usages")), "plugins:pretix_sortir:usages", {}),
        ]

    def ready(self):
        from . import errorreports, signals  # NOQA

        errorreports.install()  # card numbers never appear in Django's error reports

    def installed(self, event_or_organizer):
        from pretix_integrations_core.plugins import enable_for_organizer

        enable_for_organizer(self.name, event_or_organizer)
