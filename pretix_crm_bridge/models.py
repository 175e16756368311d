"""DocuSeal: which products require a signature, and the signature request of each ticket (queryable for the order list filter)."""
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_scopes import ScopedManager


class SignatureProduct(models.Model):
    """A product whose tickets each need a signature; ``template_id`` empty = the event's default template."""
    event = models.ForeignKey("pretixbase.Event", on_delete=models.CASCADE, related_name="+")
    item = models.OneToOneField("pretixbase.Item", on_delete=models.CASCADE, related_name="crm_signature_product")
    template_id = models.PositiveIntegerField(null=True, blank=True)

    objects = ScopedManager(organizer="event__organizer")


class SignatureRequest(models.Model):
    """One DocuSeal submission for one ticket, as last known from the sync and DocuSeal's webhooks."""
    PENDING = "pending"      # waiting for the queue
    SENT = "sent"
    OPENED = "opened"
    STARTED = "started"
    COMPLETED = "completed"
    DECLINED = "declined"
    EXPIRED = "expired"
    ARCHIVED = "archived"
    STATUSES = (
        (PENDING, _("waiting to be sent")),
        (SENT, _("sent")),
        (OPENED, _("opened")),
        (STARTED, _("being filled in")),
        (COMPLETED, _("signed")),
        (DECLINED, _("declined")),
        (EXPIRED, _("expired")),
        (ARCHIVED, _("withdrawn")),
    )
    #: statuses that no later "opened"/"started" event may overwrite
    FINAL = (COMPLETED, DECLINED, EXPIRED, ARCHIVED)
    OPEN = (PENDING, SENT, OPENED, STARTED)

    position = models.OneToOneField("pretixbase.OrderPosition", on_delete=models.CASCADE, related_name="crm_signature_request")
    order = models.ForeignKey("pretixbase.Order", on_delete=models.CASCADE, related_name="crm_signature_requests")
    organizer = models.ForeignKey("pretixbase.Organizer", on_delete=models.CASCADE, related_name="+")
    template_id = models.PositiveIntegerField(null=True, blank=True)
    #: bumped when a declined or expired request is sent again: a new submission, with a new external id
    generation = models.PositiveIntegerField(default=1)
    external_id = models.CharField(max_length=190, blank=True, default="")
    submission_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    submitter_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    submitter_slug = models.CharField(max_length=190, blank=True, default="")
    signing_url = models.URLField(max_length=500, blank=True, default="")
    signed_pdf_url = models.URLField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING, db_index=True)
    decline_reason = models.TextField(blank=True, default="")
    #: set (and committed) just before ``POST /submissions``: only a request that may have reached DocuSeal needs the
    #: lookup by external id before the next attempt
    create_sent_at = models.DateTimeField(null=True, blank=True)
    #: the organiser asked to send the link again; the queue does it and clears the flag
    resend_requested = models.BooleanField(default=False)
    updated = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organizer="organizer")

    @property
    def is_open(self):
        return self.status in self.OPEN
