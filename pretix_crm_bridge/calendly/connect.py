"""
Connecting and disconnecting an organiser's Calendly (the views stay thin; everything that talks to Calendly is here).

On connect: the account (``/users/me``), then a webhook subscription (``invitee.created``, ``invitee.canceled``) for
the organisation when the plan allows it (a free plan answers 403: the page then says polling is used). Disconnect
deletes the subscription and revokes the OAuth tokens.
"""
import logging
import secrets

from django.utils.translation import gettext as _g

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ExternalServiceError, ServiceConfigurationError

from ..webhook_secrets import hook_url
from .client import CalendlyClient, oauth_store
from .models import CalendlyConnection

logger = logging.getLogger(__name__)


def webhook_url(connection) -> str:
    """The organiser's Calendly webhook URL, as the CRM bridge's other webhook URLs (``/_crm/calendly/<organizer>/<secret>/``)."""
    return hook_url(connection.organizer, "calendly")


def _connection(organizer):
    conn, _created = CalendlyConnection.objects.get_or_create(organizer=organizer)
    return conn


def finish_connect(organizer, client: CalendlyClient, method, *, token_data=None, personal_token=None, user=None):
    """Read the account, store it, subscribe to webhooks. Returns the connection."""
    me = client.me()
    conn = _connection(organizer)
    conn.method = method
    conn.personal_token = crypto.encrypt(personal_token) if personal_token else ""
    conn.user_uri = (token_data or {}).get("owner") or me.get("uri") or ""
    conn.organization_uri = (token_data or {}).get("organization") or me.get("current_organization") or ""
    conn.account_name, conn.account_email = (me.get("name") or "")[:255], (me.get("email") or "")[:255]
    conn.last_error, conn.last_error_at = "", None
    conn.save()
    subscribe(conn, client)
    conn.log_action("pretix_crm_bridge.calendly.connected", user=user, data={"account": conn.account_email, "method": method,
                                                                             "webhook": bool(conn.webhook_uri)})
    return conn


def subscribe(conn, client, _again=True):
    """Create the organisation's webhook subscription, or note why polling is used instead."""
    signing_key = secrets.token_urlsafe(32)
    url = webhook_url(conn)
    try:
        try:
            hook = client.create_webhook(url=url, organization=conn.organization_uri, user=conn.user_uri, scope="organization",
                                         signing_key=signing_key)
        except ServiceConfigurationError as e:
            if e.status != 403 or "upgrade" in str((e.payload or {}).get("message", "")).lower():
                raise
            # not an admin of the organisation: the connected user's bookings only
            hook = client.create_webhook(url=url, organization=conn.organization_uri, user=conn.user_uri, scope="user",
                                         signing_key=signing_key)
    except ExternalServiceError as e:
        if e.status == 409 and _again:  # already subscribed (a previous connection): take it over with a new key
            for existing in client.webhooks(organization=conn.organization_uri, user=conn.user_uri, scope="organization"):
                if existing.get("callback_url") == url:
                    client.delete_webhook(existing["uri"])
            return subscribe(conn, client, _again=False)
        if e.status == 403:
            conn.webhook_note = _g("Calendly does not allow webhooks for this account (a paid Calendly plan is needed): "
                                   "bookings are read by the periodic sync instead.")
        else:
            conn.webhook_note = _g("The webhook subscription could not be created ({error}); bookings are read by the periodic "
                                   "sync instead.").format(error=str(e))
        conn.webhook_uri, conn.webhook_signing_key = "", ""
        conn.save(update_fields=["webhook_uri", "webhook_signing_key", "webhook_note"])
        return None
    conn.webhook_uri = hook.get("uri") or ""
    conn.webhook_signing_key = crypto.encrypt(signing_key)
    conn.webhook_note = ""
    conn.save(update_fields=["webhook_uri", "webhook_signing_key", "webhook_note"])
    return hook


def disconnect(conn, user=None):
    """Delete the webhook subscription and revoke the tokens; returns the problems met (the connection is removed anyway)."""
    problems = []
    try:
        client = CalendlyClient.for_connection(conn)
    except ExternalServiceError as e:
        client, problems = None, [str(e)]
    if client and conn.webhook_uri:
        try:
            client.delete_webhook(conn.webhook_uri)
        except ExternalServiceError as e:
            problems.append(str(e))
    if conn.method == CalendlyConnection.OAUTH:
        try:
            problems += [str(e) for e in oauth_store(conn.organizer).revoke()]
        except ExternalServiceError as e:
            problems.append(str(e))
    conn.log_action("pretix_crm_bridge.calendly.disconnected", user=user, data={"account": conn.account_email})
    conn.method, conn.personal_token = CalendlyConnection.OAUTH, ""
    conn.user_uri = conn.organization_uri = conn.account_name = conn.account_email = ""
    conn.webhook_uri = conn.webhook_signing_key = conn.webhook_note = ""
    conn.save()
    return problems


def is_connected(conn) -> bool:
    return bool(conn and conn.organization_uri)
