from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View

from pretix.control.permissions import OrganizerPermissionRequiredMixin
from pretix.control.views.organizer import OrganizerDetailViewMixin, OrganizerSettingsFormView

from .connection import OK, check_connection
from .forms import HelloAssoOrganizerSettingsForm


class OrganizerSettingsView(OrganizerSettingsFormView):
    form_class = HelloAssoOrganizerSettingsForm
    template_name = "pretix_helloasso_bridge/organizer_settings.html"
    permission = "organizer.settings.general:write"

    def get_success_url(self):
        return reverse("plugins:pretix_helloasso_bridge:organizer.settings", kwargs={"organizer": self.request.organizer.slug})


class OrganizerConnectionTestView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        outcome, message = check_connection(request.organizer)
        (messages.success if outcome == OK else messages.error)(request, message)
        return redirect(reverse("plugins:pretix_helloasso_bridge:organizer.settings", kwargs={"organizer": request.organizer.slug}))
