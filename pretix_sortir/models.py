import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _, pgettext_lazy
from django_scopes import ScopedManager

from pretix.base.models import LoggedModel


class SortirProduct(models.Model):
    """A product (variation NULL: all its variations) or one variation that requires a Sortir! card."""
    event = models.ForeignKey("pretixbase.Event", on_delete=models.CASCADE, related_name="sortir_products")
    item = models.ForeignKey("pretixbase.Item", on_delete=models.CASCADE, related_name="sortir_products")
    variation = models.ForeignKey("pretixbase.ItemVariation", on_delete=models.CASCADE, null=True, blank=True,
                                  related_name="sortir_products")

    objects = ScopedManager(organizer="event__organizer")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item"], condition=Q(variation__isnull=True), name="sortir_product_item_unique"),
            models.UniqueConstraint(fields=["item", "variation"], condition=Q(variation__isnull=False),
                                    name="sortir_product_variation_unique"),
        ]


class CardUsage(LoggedModel):
    """
    One card bound to one ticket: first to a cart position (held), then to an order position.

    The card number itself is never stored: ``card_digest`` is a keyed HMAC (secret outside the
    database) used for the once-per-event rule, ``card_last4`` is for display. The database enforces
    the rule with a partial unique index over the active states, per event date.
    """
    HELD = "held"
    #: degraded mode: APRAS could not answer at checkout; the number is kept encrypted until it is checked
    UNCHECKED = "unchecked"
    VALIDATED = "validated"
    GRANT_PENDING = "grant_pending"
    #: the grant request is being sent (committed before the POST: a crash leaves it for the organiser, never resent)
    GRANT_SENDING = "grant_sending"
    USED = "used"
    GRANT_UNKNOWN = "grant_unknown"
    GRANT_FAILED = "grant_failed"
    RELEASED = "released"
    #: a Sortir! ticket created outside the checkout (REST API, import, order change) that has no card yet
    MISSING = "missing"
    STATES = (
        (HELD, pgettext_lazy("sortir_state", "Held in a cart")),
        (UNCHECKED, pgettext_lazy("sortir_state", "Not checked yet (APRAS was unavailable)")),
        (VALIDATED, pgettext_lazy("sortir_state", "Validated (order placed)")),
        (GRANT_PENDING, pgettext_lazy("sortir_state", "Grant pending")),
        (GRANT_SENDING, pgettext_lazy("sortir_state", "Grant being sent")),
        (USED, pgettext_lazy("sortir_state", "Used (grant sent)")),
        (GRANT_UNKNOWN, pgettext_lazy("sortir_state", "Grant outcome unknown: check with APRAS")),
        (GRANT_FAILED, pgettext_lazy("sortir_state", "Grant failed")),
        (RELEASED, pgettext_lazy("sortir_state", "Released")),
        (MISSING, pgettext_lazy("sortir_state", "No card yet")),
    )
    #: states that take the card for the event date (the unique index below must list the same)
    ACTIVE_STATES = (HELD, UNCHECKED, VALIDATED, GRANT_PENDING, GRANT_SENDING, USED, GRANT_UNKNOWN, GRANT_FAILED)

    reference = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey("pretixbase.Event", on_delete=models.CASCADE, related_name="sortir_usages")
    subevent = models.ForeignKey("pretixbase.SubEvent", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="sortir_usages")
    #: subevent id, or 0 for events without dates: NULLs would escape the unique index on PostgreSQL
    date_key = models.PositiveIntegerField(default=0)
    card_digest = models.CharField(max_length=64, db_index=True)  # empty while MISSING
    card_last4 = models.CharField(max_length=4)
    #: the card number, encrypted, only while UNCHECKED (erased once APRAS has answered)
    card_number_secret = models.TextField(blank=True, default="")
    service_key_secret = models.TextField(blank=True, default="", verbose_name=_("APRAS service key (encrypted)"))
    holder_name_secret = models.TextField(blank=True, default="")
    state = models.CharField(max_length=20, choices=STATES, default=HELD, db_index=True)
    cart_position = models.ForeignKey("pretixbase.CartPosition", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="sortir_usages")
    cart_id = models.CharField(max_length=255, null=True, blank=True)
    order = models.ForeignKey("pretixbase.Order", on_delete=models.CASCADE, null=True, blank=True, related_name="sortir_usages")
    order_position = models.ForeignKey("pretixbase.OrderPosition", on_delete=models.CASCADE, null=True, blank=True,
                                       related_name="sortir_usages")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    grant_attempts = models.PositiveIntegerField(default=0)
    grant_next_attempt = models.DateTimeField(null=True, blank=True)
    grant_last_error = models.TextField(blank=True, default="")
    grant_id = models.CharField(max_length=64, blank=True, default="")
    granted_at = models.DateTimeField(null=True, blank=True)
    #: the state a usage was in when its card was released: a card taken back later resumes from there
    #: (a grant that was sent, or may have been, is never queued a second time)
    released_from = models.CharField(max_length=20, blank=True, default="")

    objects = ScopedManager(organizer="event__organizer")

    class Meta:
        ordering = ("-created",)
        constraints = [
            models.UniqueConstraint(
                fields=["event", "date_key", "card_digest"],
                condition=Q(state__in=("held", "unchecked", "validated", "grant_pending", "grant_sending", "used", "grant_unknown",
                                       "grant_failed")),
                name="sortir_one_active_card_per_event_date",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "grant_next_attempt"], name="sortir_usage_grant_queue"),
        ]

    @property
    def masked(self):
        return "•••• " + self.card_last4

    @property
    def is_active(self):
        return self.state in self.ACTIVE_STATES


class ArchivedUsageCount(models.Model):
    """Anonymous counts kept after usage details are deleted at the end of the retention period."""
    event = models.ForeignKey("pretixbase.Event", on_delete=models.CASCADE, related_name="sortir_archived_counts")
    state = models.CharField(max_length=20)
    count = models.PositiveIntegerField(default=0)

    objects = ScopedManager(organizer="event__organizer")

    class Meta:
        unique_together = (("event", "state"),)
