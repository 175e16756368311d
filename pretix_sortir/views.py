from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView, ListView

from pretix.control.permissions import EventPermissionRequiredMixin, OrganizerPermissionRequiredMixin
from pretix.control.views import PaginationMixin
from pretix.control.views.event import EventSettingsFormView
from pretix.control.views.organizer import OrganizerDetailViewMixin, OrganizerSettingsFormView

from .connection import OK, check_connection
from .dashboard import UsageFilterForm, missing_count, state_counts, usages_of
from .forms import AttachCardForm, SortirEventSettingsForm, SortirOrganizerSettingsForm, SortirProductsForm
from .holds import CardError
from .missing import AttachError, attach_card
from .models import CardUsage
from .tasks import mark_done, resend


class OrganizerSettingsView(OrganizerSettingsFormView):
    form_class = SortirOrganizerSettingsForm
    template_name = "pretix_sortir/organizer_settings.html"
    permission = "organizer.settings.general:write"

    def get_success_url(self):
        return reverse("plugins:pretix_sortir:organizer.settings", kwargs={"organizer": self.request.organizer.slug})


class OrganizerConnectionTestView(OrganizerDetailViewMixin, OrganizerPermissionRequiredMixin, View):
    permission = "organizer.settings.general:write"

    def post(self, request, *args, **kwargs):
        outcome, message = check_connection(request.organizer)
        (messages.success if outcome == OK else messages.error)(request, message)
        return redirect(reverse("plugins:pretix_sortir:organizer.settings", kwargs={"organizer": request.organizer.slug}))


class SortirEventMixin(EventPermissionRequiredMixin):
    """Control views are not gated by plugin activation in pretix: do it here."""

    def dispatch(self, request, *args, **kwargs):
        if "pretix_sortir" not in request.event.get_plugins():
            raise Http404(_("The Sortir! plugin is not enabled for this event."))
        return super().dispatch(request, *args, **kwargs)

    def event_url(self, name):
        return reverse(f"plugins:pretix_sortir:{name}", kwargs={"organizer": self.request.organizer.slug,
                                                                "event": self.request.event.slug})


class ProductsView(SortirEventMixin, FormView):
    permission = "event.items:write"
    template_name = "pretix_sortir/products.html"
    form_class = SortirProductsForm

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["event"] = self.request.event
        return kwargs

    @transaction.atomic
    def form_valid(self, form):
        changed = form.save()
        if changed:
            self.request.event.log_action("pretix_sortir.products.changed", user=self.request.user, data=changed)
        messages.success(self.request, _("Your changes have been saved."))
        return redirect(self.event_url("products"))

    def form_invalid(self, form):
        messages.error(self.request, _("We could not save your changes. See below for details."))
        return super().form_invalid(form)


class UsageListView(SortirEventMixin, PaginationMixin, ListView):
    permission = "event.orders:read"
    template_name = "pretix_sortir/usages.html"
    context_object_name = "usages"

    def get_queryset(self):
        self.filter_form = UsageFilterForm(data=self.request.GET or None)
        return self.filter_form.filter(usages_of(self.request.event))

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["filter_form"] = self.filter_form
        ctx["counts"] = state_counts(self.request.event)
        ctx["can_resend"] = self.request.user.has_event_permission(
            self.request.organizer, self.request.event, "event.orders:write", request=self.request)
        ctx["resendable"] = (CardUsage.GRANT_FAILED, CardUsage.GRANT_UNKNOWN)
        ctx["missing_count"] = missing_count(self.request.event)
        ctx["missing"] = CardUsage.MISSING
        return ctx


class UsageGrantActionView(SortirEventMixin, View):
    """The organiser resolves a failed or unknown grant (POST only; pretix's CSRF protection applies)."""
    permission = "event.orders:write"

    def post(self, request, *args, **kwargs):
        usage = get_object_or_404(CardUsage, event=request.event, pk=kwargs["usage"],
                                  state__in=(CardUsage.GRANT_FAILED, CardUsage.GRANT_UNKNOWN))
        self.act(usage)
        nxt = request.POST.get("next") or ""
        return redirect(nxt if nxt.startswith("/control/") else self.event_url("usages"))


class UsageResendView(UsageGrantActionView):
    def act(self, usage):
        resend(usage, user=self.request.user)
        messages.success(self.request, _("The grant will be sent to APRAS again."))


class UsageMarkDoneView(UsageGrantActionView):
    def act(self, usage):
        mark_done(usage, user=self.request.user)
        messages.success(self.request, _("The grant has been marked as done. No grant will be sent for this card."))


class EventSettingsView(SortirEventMixin, EventSettingsFormView):
    form_class = SortirEventSettingsForm
    template_name = "pretix_sortir/event_settings.html"
    permission = "event.settings.general:write"

    def get_success_url(self):
        return self.event_url("event.settings")


@method_decorator(sensitive_post_parameters("card_number"), name="dispatch")
class UsageAttachCardView(SortirEventMixin, View):
    """The organiser attaches a card to a ticket that has none (from the order page); checked with APRAS."""
    permission = "event.orders:write"

    def post(self, request, *args, **kwargs):
        usage = get_object_or_404(CardUsage.objects.select_related("order", "order_position"), event=request.event,
                                  pk=kwargs["usage"], order__isnull=False)
        form = AttachCardForm(data=request.POST)
        if not form.is_valid():
            messages.error(request, _("Please enter the Sortir! card number."))
        else:
            try:
                usage = attach_card(usage, form.cleaned_data["card_number"], user=request.user)
            except (CardError, AttachError) as e:
                messages.error(request, _("The card could not be attached: {reason}").format(reason=e))
            else:
                messages.success(request, _("Card •••• {last4} attached to ticket #{position}.").format(
                    last4=usage.card_last4, position=usage.order_position.positionid))
        kw = {"organizer": request.organizer.slug, "event": request.event.slug, "code": usage.order.code}
        return redirect(reverse("control:event.order", kwargs=kw))
