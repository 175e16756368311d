"""Control views of Calendly and prospects: thin, the work is in ``connect``, ``sync`` and ``tasks``."""
import time
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView
from django_scopes import scope, scopes_disabled

from pretix.base.models import Order, Organizer
from pretix.control.permissions import OrganizerPermissionRequiredMixin
from pretix.control.views import PaginationMixin
from pretix.control.views.organizer import OrganizerDetailViewMixin
from pretix.helpers.urls import mainreverse_absolute

from pretix_integrations_core.errors import ExternalServiceError
from pretix_integrations_core.oauth import pkce_pair

from . import config
from .client import CalendlyClient, oauth_store
from .connect import disconnect, finish_connect, is_connected
from .forms import ConnectionOptionsForm, PersonalTokenForm, ProspectFilterForm, ProspectForm
from .models import CalendlyConnection, Prospect
from .tasks import start_sync

SETTINGS_PERMISSION = "organizer.settings.general:write"
READ_PERMISSION = "organizer.crm_prospects:read"
WRITE_PERMISSION = "organizer.crm_prospects:write"
SESSION_KEY = "pretix_crm_bridge_calendly_oauth"
STATE_LIFETIME = 600


class PluginActiveMixin:
    """pretix does not gate control views by plugin activation: without the CRM bridge on the organiser, these pages do not exist."""

    def dispatch(self, request, *args, **kwargs):
        if "pretix_crm_bridge" not in request.organizer.get_plugins():
            raise Http404(_("The CRM bridge is not enabled for this organiser."))
        return super().dispatch(request, *args, **kwargs)


def _page(organizer):
    return redirect(reverse("plugins:pretix_crm_bridge:calendly", kwargs={"organizer": organizer.slug}))


def _callback_uri(request):
    """pretix's own URL (``SITE_URL``), as shown to the administrator who registers the OAuth app; not the request's host."""
    return mainreverse_absolute("plugins:pretix_crm_bridge:calendly.callback")


class CalendlyView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, TemplateView):
    template_name = "pretix_crm_bridge/calendly/connection.html"
    permission = SETTINGS_PERMISSION

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        conn = CalendlyConnection.objects.filter(organizer=self.request.organizer).first()
        ctx.update(connection=conn, connected=is_connected(conn), oauth_configured=config.oauth_configured(),
                   token_form=PersonalTokenForm(), options_form=kwargs.get("options_form") or ConnectionOptionsForm(instance=conn))
        return ctx


class ConnectView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    """Starts the OAuth flow: a state bound to this admin session and this organiser, and a PKCE verifier kept in the session."""
    permission = SETTINGS_PERMISSION

    def post(self, request, *args, **kwargs):
        if not config.oauth_configured():
            messages.error(request, _("The Calendly OAuth application is not configured: ask the pretix administrator."))
            return _page(request.organizer)
        import secrets

        state = secrets.token_urlsafe(32)
        verifier, challenge = pkce_pair()
        pending = {k: v for k, v in request.session.get(SESSION_KEY, {}).items() if v["created"] > time.time() - STATE_LIFETIME}
        pending[state] = {"organizer": request.organizer.pk, "verifier": verifier, "redirect_uri": _callback_uri(request), "created": time.time()}
        request.session[SESSION_KEY] = dict(sorted(pending.items(), key=lambda kv: kv[1]["created"])[-5:])
        query = urlencode({"client_id": config.get("calendly_client_id"), "response_type": "code", "redirect_uri": _callback_uri(request),
                           "code_challenge_method": "S256", "code_challenge": challenge, "state": state})
        return redirect(config.get("calendly_auth_url").rstrip("/") + "/oauth/authorize?" + query)


class CallbackView(View):
    """Calendly's redirect back. The state must be one this session started, unused, recent, for an organiser the admin may configure."""

    def refuse(self, request, message, status=400):
        return TemplateResponse(request, "pretix_crm_bridge/calendly/callback_error.html", {"message": message}, status=status)

    def get(self, request, *args, **kwargs):
        state = request.GET.get("state") or ""
        pending = request.session.get(SESSION_KEY, {})
        entry = pending.pop(state, None) if state else None
        request.session[SESSION_KEY] = pending  # single use: gone even if what follows fails
        if not entry or entry["created"] < time.time() - STATE_LIFETIME:
            return self.refuse(request, _("This Calendly authorization does not belong to a connection you started in this session, "
                                          "or it was already used or is too old. Start again from the Calendly page."))
        with scopes_disabled():
            organizer = Organizer.objects.filter(pk=entry["organizer"]).first()
        if not organizer or "pretix_crm_bridge" not in organizer.get_plugins() or \
                not request.user.has_organizer_permission(organizer, SETTINGS_PERMISSION, request=request):
            return self.refuse(request, _("You may not change this organiser's settings."), status=403)
        if request.GET.get("error") or not request.GET.get("code"):
            messages.error(request, _("Calendly did not grant access ({error}).").format(error=request.GET.get("error") or _("no code")))
            return _page(organizer)
        with scope(organizer=organizer):
            try:
                store = oauth_store(organizer)
                data = store.exchange_code(request.GET["code"], entry["redirect_uri"], entry["verifier"])
                conn = finish_connect(organizer, CalendlyClient(oauth=store), CalendlyConnection.OAUTH, token_data=data, user=request.user)
            except ExternalServiceError as e:
                messages.error(request, _("Calendly could not be connected: {error}").format(error=str(e)))
                return _page(organizer)
            _connected_message(request, conn)
            start_sync(organizer)
        return _page(organizer)


def _connected_message(request, conn):
    messages.success(request, _("Calendly is connected ({account}).").format(account=conn.account_email or conn.account_name))
    if not conn.webhook_uri:
        messages.warning(request, conn.webhook_note)


class PersonalTokenView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = SETTINGS_PERMISSION

    def post(self, request, *args, **kwargs):
        form = PersonalTokenForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Enter a personal access token."))
            return _page(request.organizer)
        token = form.cleaned_data["token"].strip()
        try:
            conn = finish_connect(request.organizer, CalendlyClient.with_token(request.organizer, token), CalendlyConnection.PAT,
                                  personal_token=token, user=request.user)
        except ExternalServiceError as e:
            messages.error(request, _("Calendly did not accept this token: {error}").format(error=str(e)))
            return _page(request.organizer)
        _connected_message(request, conn)
        start_sync(request.organizer)
        return _page(request.organizer)


class DisconnectView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = SETTINGS_PERMISSION

    def post(self, request, *args, **kwargs):
        conn = get_object_or_404(CalendlyConnection, organizer=request.organizer)
        problems = disconnect(conn, user=request.user)
        messages.success(request, _("Calendly is disconnected. The prospects stay."))
        for p in problems:
            messages.warning(request, p)
        return _page(request.organizer)


class SyncNowView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = SETTINGS_PERMISSION

    def post(self, request, *args, **kwargs):
        conn = CalendlyConnection.objects.filter(organizer=request.organizer).first()
        if not is_connected(conn):
            messages.error(request, _("Connect Calendly first."))
        else:
            start_sync(request.organizer)
            messages.success(request, _("The sync has started. Refresh this page in a moment to see its result."))
        return _page(request.organizer)


class OptionsView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = SETTINGS_PERMISSION

    def post(self, request, *args, **kwargs):
        conn, _created = CalendlyConnection.objects.get_or_create(organizer=request.organizer)
        form = ConnectionOptionsForm(request.POST, instance=conn)
        if not form.is_valid():
            view = CalendlyView(request=request, kwargs=kwargs, args=args)
            return TemplateResponse(request, view.template_name, view.get_context_data(options_form=form), status=400)
        form.save()
        conn.log_action("pretix_crm_bridge.calendly.options", user=request.user, data=form.cleaned_data)
        messages.success(request, _("Your changes have been saved."))
        return _page(request.organizer)


# -- prospects -------------------------------------------------------------------------------------------------

class ProspectListView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, PaginationMixin, ListView):
    template_name = "pretix_crm_bridge/calendly/prospects.html"
    permission = READ_PERMISSION
    context_object_name = "prospects"

    def get_queryset(self):
        from django.db.models import Count
        qs = Prospect.objects.filter(organizer=self.request.organizer).annotate(meeting_count=Count("meetings")).order_by("-created", "-pk")
        return self.filter_form.filter(qs)

    @property
    def filter_form(self):
        if not hasattr(self, "_filter_form"):
            self._filter_form = ProspectFilterForm(self.request.GET)
        return self._filter_form

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["filter_form"] = self.filter_form
        return ctx


class ProspectDetailView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, DetailView):
    template_name = "pretix_crm_bridge/calendly/prospect.html"
    permission = READ_PERMISSION
    context_object_name = "prospect"

    def get_object(self, queryset=None):
        return get_object_or_404(Prospect, organizer=self.request.organizer, pk=self.kwargs["prospect"])

    def can_write(self):
        return self.request.user.has_organizer_permission(self.request.organizer, WRITE_PERMISSION, request=self.request)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        p = self.object
        events = self.request.user.get_events_with_permission("event.orders:read", request=self.request).filter(organizer=self.request.organizer)
        ctx.update(meetings=p.meetings.all(), can_write=self.can_write(), form=kwargs.get("form") or ProspectForm(instance=p),
                   orders=Order.objects.filter(event__in=events, email__iexact=p.email).select_related("event").order_by("-datetime")[:50],
                   logs=p.all_logentries()[:50])
        return ctx

    def post(self, request, *args, **kwargs):
        if not self.can_write():
            raise PermissionDenied(_("You do not have permission to change prospects."))
        self.object = self.get_object()
        form = ProspectForm(request.POST, instance=self.object)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        with transaction.atomic():
            p = Prospect.objects.select_for_update().get(pk=self.object.pk)
            old_status = p.status
            p.status, p.phone = form.cleaned_data["status"], form.cleaned_data["phone"]
            p.marketing_consent = form.cleaned_data["marketing_consent"]
            note = form.cleaned_data.get("note", "").strip()
            if note:
                p.notes = (p.notes + "\n" if p.notes else "") + f"{now().strftime('%Y-%m-%d')} ({request.user.email}): {note}"
            if old_status != p.status:
                p.status_changed = now()
            p.save()
            if old_status != p.status:
                p.log_action("pretix_crm_bridge.prospect.status", user=request.user, data={"old": old_status, "new": p.status})
            if note:
                p.log_action("pretix_crm_bridge.prospect.note", user=request.user, data={"note": note})
            changed = [f for f in ("phone", "marketing_consent") if f in form.changed_data]
            if changed:
                p.log_action("pretix_crm_bridge.prospect.changed", user=request.user, data={f: getattr(p, f) for f in changed})
        messages.success(request, _("Your changes have been saved."))
        return redirect(reverse("plugins:pretix_crm_bridge:prospects.detail", kwargs={"organizer": request.organizer.slug, "prospect": p.pk}))


class ProspectDeleteView(PluginActiveMixin, OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    """Removes one prospect with its meetings (a person asking to be forgotten); the log keeps that it happened, not who."""
    permission = WRITE_PERMISSION

    def post(self, request, *args, **kwargs):
        from .shredder import delete_prospect

        p = get_object_or_404(Prospect, organizer=request.organizer, pk=kwargs["prospect"])
        delete_prospect(p, user=request.user)
        messages.success(request, _("The prospect and its meetings have been deleted."))
        return redirect(reverse("plugins:pretix_crm_bridge:prospects", kwargs={"organizer": request.organizer.slug}))
