from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import TemplateView

from pretix.control.permissions import EventPermissionRequiredMixin, OrganizerPermissionRequiredMixin
from pretix.control.views.organizer import OrganizerDetailViewMixin, OrganizerSettingsFormView

from pretix_integrations_core.errors import ExternalServiceError

from .config import configured_providers, provider_for, provider_names
from .connection import OK, check_billetweb, check_connection, check_weezevent
from .forms import BilletwebSettingsForm, HelloAssoOrganizerSettingsForm, LinkFormForm, LinkOptionsForm, WeezeventSettingsForm
from .models import FormLink
from .tasks import start_sync


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


class PlatformSettingsView(OrganizerSettingsFormView):
    """The connection page of one more platform (Billetweb, Weezevent): its credentials and its "Test connection"."""
    template_name = "pretix_helloasso_bridge/platform_settings.html"
    permission = "organizer.settings.general:write"
    platform = ""
    platform_name = ""
    help_text = ""

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(platform_name=self.platform_name, help_text=self.help_text,
                   test_url=reverse(f"plugins:pretix_helloasso_bridge:organizer.{self.platform}.test",
                                    kwargs={"organizer": self.request.organizer.slug}))
        return ctx

    def get_success_url(self):
        return reverse(f"plugins:pretix_helloasso_bridge:organizer.{self.platform}", kwargs={"organizer": self.request.organizer.slug})


class BilletwebSettingsView(PlatformSettingsView):
    form_class = BilletwebSettingsForm
    platform = "billetweb"
    platform_name = _("Billetweb")
    help_text = _("These settings apply to every event of this organizer that imports a Billetweb event. In Billetweb, open "
                  "Tools > API (www.billetweb.fr/bo/api.php) with an administrator account, click “create a key”, keep it read-only, "
                  "and copy the “User” and the “Key” shown. A key restricted to some events works for those events.")


class BilletwebConnectionTestView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        outcome, message = check_billetweb(request.organizer)
        (messages.success if outcome == OK else messages.error)(request, message)
        return redirect(reverse("plugins:pretix_helloasso_bridge:organizer.billetweb", kwargs={"organizer": request.organizer.slug}))


class WeezeventSettingsView(PlatformSettingsView):
    form_class = WeezeventSettingsForm
    platform = "weezevent"
    platform_name = _("Weezevent")
    help_text = _("These settings apply to every event of this organizer that imports a Weezevent event. The API key is in "
                  "Weezevent's back office (Tools > API KEY); the login and password are those of a Weezevent user with access "
                  "to the events. They are exchanged once for an access token. A refused login is never tried again "
                  "automatically (five refused logins block the account for 30 minutes): save this form again after fixing them.")


class WeezeventConnectionTestView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        outcome, message = check_weezevent(request.organizer)
        (messages.success if outcome == OK else messages.error)(request, message)
        return redirect(reverse("plugins:pretix_helloasso_bridge:organizer.weezevent", kwargs={"organizer": request.organizer.slug}))


def platform_choices(organizer):
    """HelloAsso's provider and forms, and {identifier: (provider, events)} of the other configured platforms; errors by platform."""
    provider, forms_list, others, errors = None, [], {}, []
    configured = configured_providers(organizer)
    for identifier in configured or ["helloasso"]:
        try:
            prov = provider_for(organizer, identifier)
            items = prov.list_forms()
        except ExternalServiceError as e:
            errors.append(str(e))
            continue
        if identifier == "helloasso":
            provider, forms_list = prov, items
        else:
            others[identifier] = (prov, items)
    return provider, forms_list, others, errors


def split_ref(ref):
    """``billetweb:1350001`` -> ("billetweb", "1350001"); a HelloAsso ref has no prefix."""
    identifier, sep, rest = (ref or "").partition(":")
    if sep and identifier in ("billetweb", "weezevent"):
        return identifier, rest
    return "helloasso", ref


class HelloAssoEventMixin(EventPermissionRequiredMixin):
    """Control views are not gated by plugin activation in pretix: do it here."""

    def dispatch(self, request, *args, **kwargs):
        if "pretix_helloasso_bridge" not in request.event.get_plugins():
            raise Http404(_("The external ticketing plugin is not enabled for this event."))
        return super().dispatch(request, *args, **kwargs)

    def event_url(self, name="event"):
        return reverse(f"plugins:pretix_helloasso_bridge:{name}", kwargs={"organizer": self.request.organizer.slug,
                                                                          "event": self.request.event.slug})

    def allowed(self, perm):
        return self.request.user.has_event_permission(self.request.organizer, self.request.event, perm, request=self.request)


def webhook_url(request, link):
    return request.build_absolute_uri(reverse("plugins:pretix_helloasso_bridge:webhook", kwargs={
        "event_id": link.event_id, "secret": link.ensure_webhook_secret()}))


class EventView(HelloAssoEventMixin, TemplateView):
    permission = "event.orders:read"
    template_name = "pretix_helloasso_bridge/event.html"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        event = self.request.event
        link = FormLink.objects.filter(event=event).first()
        can_change = self.allowed("event.settings.general:write")
        ctx.update(link=link, can_change=can_change, can_sync=self.allowed("event.orders:write"),
                   reports=event.helloasso_reports.all()[:10])
        if link and can_change:
            ctx["webhook_url"] = webhook_url(self.request, link)
            ctx["options_form"] = LinkOptionsForm(initial={"send_emails": link.send_emails, "paused": link.status == FormLink.PAUSED})
        if link:
            ctx["platform_name"] = provider_names().get(link.provider, link.provider)
        if not link and can_change:
            provider, forms_list, others, errors = platform_choices(event.organizer)
            if errors:
                ctx["forms_error"] = " ".join(errors)
            ctx["link_form"] = kwargs.get("link_form") or LinkFormForm(provider=provider, forms_list=forms_list, others=others)
        return ctx


class LinkView(HelloAssoEventMixin, View):
    permission = "event.settings.general:write"

    def post(self, request, *args, **kwargs):
        event = request.event
        if FormLink.objects.filter(event=event).exists():
            messages.error(request, _("This event is already linked to a ticketing platform."))
            return redirect(self.event_url())
        provider, forms_list, others, errors = platform_choices(event.organizer)
        if errors and not provider and not others:
            messages.error(request, " ".join(errors))
            return redirect(self.event_url())
        form = LinkFormForm(data=request.POST, provider=provider, forms_list=forms_list, others=others)
        if not form.is_valid():
            view = EventView(request=request, kwargs=self.kwargs, args=self.args)
            return view.render_to_response(view.get_context_data(link_form=form))
        identifier, ref = split_ref(form.cleaned_data["ref"])
        items = forms_list if identifier == "helloasso" else others.get(identifier, (None, []))[1]
        known = {f.ref: f for f in items}.get(ref)
        with transaction.atomic():
            link = FormLink.objects.create(event=event, provider=identifier, form_ref=ref, form_title=known.title[:500] if known else "",
                                           form_url=known.url[:500] if known else "")
            link.ensure_webhook_secret()
            event.log_action("pretix_helloasso_bridge.link.created", user=request.user, data={"form": ref, "provider": identifier})
            start_sync(event, trigger="manual", full=True)
        messages.success(request, _("The event is now linked to the {platform} event or form. The first import has started.").format(
            platform=provider_names().get(identifier, identifier)))
        return redirect(self.event_url())


class UnlinkView(HelloAssoEventMixin, View):
    permission = "event.settings.general:write"

    def post(self, request, *args, **kwargs):
        link = FormLink.objects.filter(event=request.event).first()
        if link:
            request.event.log_action("pretix_helloasso_bridge.link.deleted", user=request.user, data={"form": link.form_ref, "provider": link.provider})
            link.delete()  # products, questions and orders stay: they are now ordinary pretix data
            messages.success(request, _("The link to {platform} was removed. Everything imported so far stays in pretix.").format(
                platform=provider_names().get(link.provider, link.provider)))
        return redirect(self.event_url())


class OptionsView(HelloAssoEventMixin, View):
    permission = "event.settings.general:write"

    def post(self, request, *args, **kwargs):
        link = FormLink.objects.filter(event=request.event).first()
        form = LinkOptionsForm(data=request.POST)
        if link and form.is_valid():
            link.send_emails = form.cleaned_data["send_emails"]
            if form.cleaned_data["paused"]:
                link.status = FormLink.PAUSED
            elif link.status == FormLink.PAUSED:
                link.status = FormLink.ACTIVE
            link.save(update_fields=["send_emails", "status"])
            request.event.log_action("pretix_helloasso_bridge.link.changed", user=request.user,
                                     data={"send_emails": link.send_emails, "status": link.status, "provider": link.provider})
            messages.success(request, _("Your changes have been saved."))
        return redirect(self.event_url())


class SyncNowView(HelloAssoEventMixin, View):
    permission = "event.orders:write"

    def post(self, request, *args, **kwargs):
        link = FormLink.objects.filter(event=request.event).first()
        if not link:
            raise Http404()
        if link.running_since:
            messages.info(request, _("A sync is already running."))
        else:
            start_sync(request.event, trigger="manual", full=request.POST.get("full") == "1")
            messages.success(request, _("The sync has started. This page shows its progress."))
        return redirect(self.event_url())
