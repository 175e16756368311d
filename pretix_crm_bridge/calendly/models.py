"""The organiser's Calendly connection, and the prospects its bookings become (personal data: see ``shredder``)."""
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _, pgettext_lazy
from django_scopes import ScopedManager

from pretix.base.models import LoggedModel

from pretix_integrations_core import crypto


class CalendlyConnection(LoggedModel):
    """One per organiser. Tokens of the OAuth flow live in the core's token store; the rest is here."""
    OAUTH = "oauth"
    PAT = "pat"
    METHODS = ((OAUTH, _("OAuth")), (PAT, _("Personal access token")))

    organizer = models.OneToOneField("pretixbase.Organizer", on_delete=models.CASCADE, related_name="calendly_connection")
    method = models.CharField(max_length=8, choices=METHODS, default=OAUTH)
    #: the personal access token (method PAT), encrypted
    personal_token = models.TextField(blank=True, default="")
    user_uri = models.CharField(max_length=500, blank=True, default="")
    organization_uri = models.CharField(max_length=500, blank=True, default="")
    account_name = models.CharField(max_length=255, blank=True, default="")
    account_email = models.CharField(max_length=255, blank=True, default="")
    #: the webhook subscription of this connection (empty: polling only) and its signing key, encrypted
    webhook_uri = models.CharField(max_length=500, blank=True, default="")
    webhook_signing_key = models.TextField(blank=True, default="")
    #: why there is no subscription (e.g. the plan does not allow webhooks), shown on the page
    webhook_note = models.TextField(blank=True, default="")
    #: the text of the Calendly booking question whose answer is the person's marketing consent (empty: never consented)
    consent_question = models.CharField(max_length=255, blank=True, default="", verbose_name=_("Consent question in Calendly"))
    #: Mautic segment ids ("3, 5") for new prospects who consented, and for prospects who became customers
    mautic_segments_created = models.CharField(max_length=190, blank=True, default="", verbose_name=_("Mautic segments for new prospects"))
    mautic_segments_converted = models.CharField(max_length=190, blank=True, default="",
                                                 verbose_name=_("Mautic segments for converted prospects"))
    sync_interval = models.PositiveIntegerField(default=30, verbose_name=_("Sync interval (minutes)"))
    retention_months = models.PositiveIntegerField(default=0, verbose_name=_("Delete lost prospects after (months)"))
    last_sync = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    #: set while a sync runs (one sync per organiser at a time); a stale value is taken over
    running_since = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(organizer="organizer")

    def secret(self, field) -> str:
        value = getattr(self, field)
        try:
            return crypto.decrypt(value) if value else ""
        except crypto.SecretError:
            return ""


class Prospect(LoggedModel):
    NEW = "new"
    CONTACTED = "contacted"
    CONVERTED = "converted"
    LOST = "lost"
    STATUSES = (
        (NEW, pgettext_lazy("prospect_status", "New")),
        (CONTACTED, pgettext_lazy("prospect_status", "Contacted")),
        (CONVERTED, pgettext_lazy("prospect_status", "Converted")),
        (LOST, pgettext_lazy("prospect_status", "Lost")),
    )

    organizer = models.ForeignKey("pretixbase.Organizer", on_delete=models.CASCADE, related_name="crm_prospects")
    name = models.CharField(max_length=255, blank=True, default="", verbose_name=_("Name"))
    email = models.EmailField(max_length=254, verbose_name=_("Email"))
    phone = models.CharField(max_length=64, blank=True, default="", verbose_name=_("Phone"))
    status = models.CharField(max_length=16, choices=STATUSES, default=NEW, verbose_name=_("Status"))
    source = models.CharField(max_length=64, blank=True, default="calendly", verbose_name=_("Source"))
    notes = models.TextField(blank=True, default="", verbose_name=_("Notes"))
    #: answers to the booking questions: ``[{"question": …, "answer": …}]``, newest booking's answers win per question
    answers = models.JSONField(default=list, blank=True)
    #: the answer to the organiser's consent question, from the newest booking (part 1's rule: no consent, nothing to Mautic)
    marketing_consent = models.BooleanField(default=False, verbose_name=_("Marketing consent"))
    order = models.ForeignKey("pretixbase.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                              verbose_name=_("Order"))
    converted_at = models.DateTimeField(null=True, blank=True)
    #: when the status last changed (retention counts from there)
    status_changed = models.DateTimeField(auto_now_add=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organizer="organizer")

    class Meta:
        ordering = ("-created", "-pk")
        constraints = [
            models.UniqueConstraint(Lower("email"), "organizer", name="crm_prospect_email_unique_per_organizer"),
        ]

    def __str__(self):
        return self.name or self.email


class Meeting(models.Model):
    ACTIVE = "active"
    CANCELED = "canceled"
    RESCHEDULED = "rescheduled"
    STATUSES = (
        (ACTIVE, pgettext_lazy("meeting_status", "Booked")),
        (CANCELED, pgettext_lazy("meeting_status", "Cancelled")),
        (RESCHEDULED, pgettext_lazy("meeting_status", "Rescheduled")),
    )

    prospect = models.ForeignKey(Prospect, on_delete=models.CASCADE, related_name="meetings")
    invitee_uri = models.CharField(max_length=500, unique=True)
    event_uri = models.CharField(max_length=500)
    event_type_name = models.CharField(max_length=255, blank=True, default="")
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    location = models.CharField(max_length=500, blank=True, default="")
    join_url = models.URLField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=STATUSES, default=ACTIVE)
    cancel_reason = models.TextField(blank=True, default="")
    #: the invitee that replaced this one (a reschedule)
    new_invitee_uri = models.CharField(max_length=500, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organizer="prospect__organizer")

    class Meta:
        ordering = ("-start", "-pk")
