"""Shared models of the suite: OAuth2 tokens and received webhook deliveries."""
from django.db import models


class OAuthToken(models.Model):
    """
    One OAuth2 token pair per (service, client id, account), shared by every web and celery worker.

    ``account`` is empty for client-credentials tokens (one per client); tokens granted by a user through the
    authorization-code flow have one row per granting account (e.g. ``org-12`` for an organiser's Calendly).

    Both tokens are stored encrypted (:mod:`pretix_integrations_core.crypto`). Rows are only changed under a
    row lock (``select_for_update``) by :class:`pretix_integrations_core.oauth.OAuth2ClientCredentials`.
    """
    service = models.CharField(max_length=64)
    client_id = models.CharField(max_length=255)
    account = models.CharField(max_length=190, blank=True, default="")
    access_token = models.TextField(blank=True, default="")
    access_expires = models.DateTimeField(null=True, blank=True)
    refresh_token = models.TextField(blank=True, default="")
    refresh_expires = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "client_id", "account"], name="integrations_oauthtoken_account_unique"),
        ]


class WebhookDelivery(models.Model):
    """One accepted inbound webhook delivery, recorded so that a repeated delivery is acknowledged but not processed twice."""
    service = models.CharField(max_length=64)
    #: which connection (e.g. ``event-12``) the delivery was addressed to
    connection = models.CharField(max_length=190)
    #: the sender's delivery id, or a digest of the raw body when the sender gives none
    delivery_id = models.CharField(max_length=190)
    received = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "connection", "delivery_id"], name="integrations_webhookdelivery_unique"),
        ]
        indexes = [models.Index(fields=["received"])]
