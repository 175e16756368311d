from django.utils.translation import gettext_lazy as _

from pretix_integrations_core import __version__

try:
    from pretix.base.plugins import PLUGIN_LEVEL_EVENT, PluginConfig
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
        level = PLUGIN_LEVEL_EVENT
        compatibility = "pretix>=2026.8.0"
        settings_links = [
            ((_("Sortir!"), _("Products")), "plugins:pretix_sortir:products", {}),
        ]
        navigation_links = [
            ((_("Sortir!"), _("Card usages")), "plugins:pretix_sortir:usages", {}),
        ]

    def ready(self):
        from . import signals  # NOQA
