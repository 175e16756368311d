from django.utils.translation import gettext_lazy as _

from . import __version__

try:
    from pretix.base.plugins import PLUGIN_LEVEL_EVENT, PluginConfig
except ImportError:
    raise RuntimeError("Please use pretix 2026.8 or above to run this plugin!")


class IntegrationsCoreApp(PluginConfig):
    """
    Shared building blocks of the suite (encrypted secrets, outbound HTTP, webhook signatures).

    It is registered as a hidden plugin only so that Django loads its translations and templates;
    organisers never enable it: the three visible plugins use it as a library.
    """

    default = True
    name = "pretix_integrations_core"
    verbose_name = _("Integrations core")

    class PretixPluginMeta:
        name = _("Integrations core")
        author = "pretix-fr-integrations"
        version = __version__
        category = "INTEGRATION"
        description = _("Shared code of the French integrations suite. It does not need to be enabled.")
        visible = False
        restricted = False
        level = PLUGIN_LEVEL_EVENT
        compatibility = "pretix>=2026.8.0"
