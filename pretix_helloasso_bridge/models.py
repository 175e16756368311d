import secrets

from django.db import models
from django.utils.translation import gettext_lazy as _, pgettext_lazy
from django_scopes import ScopedManager

from pretix.base.models import LoggedModel

from pretix_integrations_core import crypto


class FormLink(LoggedModel):
    """The HelloAsso form this event is a copy of. Deleting the link keeps everything that was imported."""
    ACTIVE = "active"
    PAUSED = "paused"
    ERROR = "error"
    STATUSES = (
        (ACTIVE, pgettext_lazy("helloasso_status", "Active")),
        (PAUSED, pgettext_lazy("helloasso_status", "Paused")),
        (ERROR, pgettext_lazy("helloasso_status", "Error")),
    )

    event = models.OneToOneField("pretixbase.Event", on_delete=models.CASCADE, related_name="helloasso_link")
    provider = models.CharField(max_length=32, default="helloasso")
    form_ref = models.CharField(max_length=190)
    form_title = models.CharField(max_length=500, blank=True, default="")
    form_url = models.URLField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=16, choices=STATUSES, default=ACTIVE)
    #: secret of the webhook URL, encrypted (it is shown to the organiser, so it must be recoverable)
    webhook_secret = models.TextField(blank=True, default="")
    #: continuationToken after the last committed page of an unfinished scan (the next run resumes there)
    cursor = models.CharField(max_length=190, blank=True, default="")
    #: when the last complete scan started (the next sync lists the changes since then, minus an overlap)
    scanned_until = models.DateTimeField(null=True, blank=True)
    last_success = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    send_emails = models.BooleanField(default=False)
    #: set while a sync runs (one sync per event at a time, across workers); a stale value is taken over
    running_since = models.DateTimeField(null=True, blank=True)
    #: progress of the running sync, shown on the event page
    progress = models.CharField(max_length=190, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    objects = ScopedManager(organizer="event__organizer")

    def ensure_webhook_secret(self) -> str:
        if self.webhook_secret:
            try:
                return crypto.decrypt(self.webhook_secret)
            except crypto.SecretError:
                pass
        value = secrets.token_urlsafe(32)
        self.webhook_secret = crypto.encrypt(value)
        self.save(update_fields=["webhook_secret"])
        return value

    def get_webhook_secret(self) -> str:
        try:
            return crypto.decrypt(self.webhook_secret) if self.webhook_secret else ""
        except crypto.SecretError:
            return ""


class RemoteObject(models.Model):
    """Which pretix object came from which remote id, so a second sync updates instead of duplicating."""
    PRODUCT = "product"
    QUESTION = "question"
    ORDER = "order"
    POSITION = "position"
    PAYMENT = "payment"
    REFUND = "refund"
    KINDS = ((PRODUCT, PRODUCT), (QUESTION, QUESTION), (ORDER, ORDER), (POSITION, POSITION), (PAYMENT, PAYMENT), (REFUND, REFUND))

    event = models.ForeignKey("pretixbase.Event", on_delete=models.CASCADE, related_name="helloasso_objects")
    provider = models.CharField(max_length=32, default="helloasso")
    kind = models.CharField(max_length=16, choices=KINDS)
    remote_id = models.CharField(max_length=190)
    item = models.ForeignKey("pretixbase.Item", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    question = models.ForeignKey("pretixbase.Question", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    order = models.ForeignKey("pretixbase.Order", on_delete=models.SET_NULL, null=True, blank=True, related_name="helloasso_objects")
    position = models.ForeignKey("pretixbase.OrderPosition", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    payment = models.ForeignKey("pretixbase.OrderPayment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    refund = models.ForeignKey("pretixbase.OrderRefund", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    #: what the bridge last wrote (to tell an organiser's change from a remote change)
    synced = models.JSONField(default=dict, blank=True)
    updated = models.DateTimeField(auto_now=True)

    objects = ScopedManager(organizer="event__organizer")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "provider", "kind", "remote_id"], name="helloasso_remoteobject_unique"),
        ]


class SyncReport(models.Model):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    STATES = (
        (QUEUED, pgettext_lazy("helloasso_sync", "Waiting to start")),
        (RUNNING, pgettext_lazy("helloasso_sync", "Running")),
        (SUCCESS, pgettext_lazy("helloasso_sync", "Finished")),
        (FAILED, pgettext_lazy("helloasso_sync", "Failed")),
    )
    event = models.ForeignKey("pretixbase.Event", on_delete=models.CASCADE, related_name="helloasso_reports")
    trigger = models.CharField(max_length=16, default="manual")
    full = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=STATES, default=RUNNING)
    started = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)
    orders_created = models.PositiveIntegerField(default=0)
    orders_updated = models.PositiveIntegerField(default=0)
    orders_cancelled = models.PositiveIntegerField(default=0)
    orders_refunded = models.PositiveIntegerField(default=0)
    orders_seen = models.PositiveIntegerField(default=0)
    #: [{"remote_id": ..., "reason": ...}]
    skipped = models.JSONField(default=list, blank=True)
    #: [text, ...]: quota exceeded, chargebacks, organiser's changes that differ from HelloAsso
    warnings = models.JSONField(default=list, blank=True)
    api_calls = models.PositiveIntegerField(default=0)
    duration = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    objects = ScopedManager(organizer="event__organizer")

    class Meta:
        ordering = ("-started", "-pk")

    @property
    def summary(self):
        return _("{created} created, {updated} updated, {cancelled} cancelled, {refunded} refunded, {skipped} skipped").format(
            created=self.orders_created, updated=self.orders_updated, cancelled=self.orders_cancelled,
            refunded=self.orders_refunded, skipped=len(self.skipped))
