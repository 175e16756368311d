"""Signal receivers of pretix_helloasso_bridge; they delegate to the modules that do the work."""
from django.dispatch import receiver
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from pretix.control.signals import nav_organizer

from . import config  # NOQA: F401 - registers the settings defaults


@receiver(nav_organizer, dispatch_uid="pretix_helloasso_bridge_nav_organizer")
def nav_organizer_settings(sender, request, organizer, **kwargs):
    if not request.user.has_organizer_permission(organizer, "organizer.settings.general:write", request=request):
        return []
    return [{
        "label": _("HelloAsso"),
        "url": reverse("plugins:pretix_helloasso_bridge:organizer.settings", kwargs={"organizer": organizer.slug}),
        "parent": reverse("control:organizer.edit", kwargs={"organizer": organizer.slug}),
        "active": bool(request.resolver_match) and request.resolver_match.url_name.startswith("organizer.")
        and request.resolver_match.namespace == "plugins:pretix_helloasso_bridge",
        "icon": "exchange",
    }]
