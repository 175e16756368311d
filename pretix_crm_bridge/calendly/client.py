"""Calendly API v2 over HTTP (``shared/docs/crm-apis.md`` §1). Speaks HTTP only; deciding what to do is the callers' job."""
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from pretix_integrations_core.errors import ServiceConfigurationError
from pretix_integrations_core.httpclient import HttpClient, json_body
from pretix_integrations_core.oauth import OAuth2AuthorizationCode

from . import SERVICE, config

#: the service name of the token rows in the core's store
TOKEN_SERVICE = "calendly"
WEBHOOK_EVENTS = ["invitee.created", "invitee.canceled"]


def oauth_store(organizer, **http_kwargs):
    """The core's token store for this organiser's grant (one row per organiser)."""
    client_id, client_secret = config.get("calendly_client_id"), config.get("calendly_client_secret")
    if not client_id or not client_secret:
        raise ServiceConfigurationError(SERVICE, str(_("configuration")), detail=str(
            _("The Calendly OAuth application is not configured: the pretix administrator must set its client id and secret.")))
    api = HttpClient(SERVICE, config.get("calendly_api_url"), scope=f"org{organizer.pk}-calendly", **http_kwargs)
    auth = HttpClient(SERVICE, config.get("calendly_auth_url"), scope=f"org{organizer.pk}-calendly-auth", max_attempts=1)
    return OAuth2AuthorizationCode(TOKEN_SERVICE, account=f"org-{organizer.pk}", client_id=client_id, client_secret=client_secret,
                                   http=api, token_http=auth)


def uuid_of(uri: str) -> str:
    """The UUID of a resource URI (its last path segment)."""
    return urlsplit(uri or "").path.rstrip("/").rsplit("/", 1)[-1]


class CalendlyClient:
    def __init__(self, *, oauth: OAuth2AuthorizationCode = None, token: str = None, http: HttpClient = None):
        if (oauth is None) == (token is None):
            raise ValueError("one of oauth or token")
        self.oauth, self.token = oauth, token
        self.http = oauth.http if oauth else http

    @classmethod
    def for_connection(cls, connection, **http_kwargs):
        from .models import CalendlyConnection

        if connection.method == CalendlyConnection.PAT:
            token = connection.secret("personal_token")
            if not token:
                raise ServiceConfigurationError(SERVICE, str(_("configuration")), detail=str(
                    _("The personal access token is missing or cannot be decrypted: enter it again.")))
            return cls.with_token(connection.organizer, token, **http_kwargs)
        return cls(oauth=oauth_store(connection.organizer, **http_kwargs))

    @classmethod
    def with_token(cls, organizer, token, **http_kwargs):
        http = HttpClient(SERVICE, config.get("calendly_api_url"), scope=f"org{organizer.pk}-calendly", **http_kwargs)
        return cls(token=token, http=http)

    def request(self, method, path, *, operation, **kwargs):
        if self.oauth:
            return self.oauth.request(method, path, operation=operation, **kwargs)
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request(method, path, operation=operation, headers=headers, **kwargs)

    def _json(self, resp, operation):
        return json_body(resp, SERVICE, operation)

    def _pages(self, path, params, operation):
        params = dict(params)
        while True:
            data = self._json(self.request("GET", path, operation=operation, params=params), operation)
            yield from data.get("collection") or []
            token = (data.get("pagination") or {}).get("next_page_token")
            if not token:
                return
            params["page_token"] = token

    # -- endpoints -----------------------------------------------------------------------------------

    def me(self) -> dict:
        return self._json(self.request("GET", "/users/me", operation=str(_("account"))), "account").get("resource") or {}

    def scheduled_events(self, *, organization, user=None, min_start=None, max_start=None, count=100):
        params = {"organization": organization, "count": count, "sort": "start_time:asc"}
        if user:
            params["user"] = user
        if min_start:
            params["min_start_time"] = min_start
        if max_start:
            params["max_start_time"] = max_start
        return self._pages("/scheduled_events", params, str(_("scheduled events")))

    def invitees(self, event_uri, count=100):
        return self._pages(f"/scheduled_events/{uuid_of(event_uri)}/invitees", {"count": count}, str(_("invitees")))

    def create_webhook(self, *, url, organization, user, scope, signing_key):
        body = {"url": url, "events": WEBHOOK_EVENTS, "organization": organization, "scope": scope, "signing_key": signing_key}
        if scope == "user":
            body["user"] = user
        resp = self.request("POST", "/webhook_subscriptions", operation=str(_("webhook subscription")), json=body, retry_safe=False)
        return self._json(resp, "webhook subscription").get("resource") or {}

    def webhooks(self, *, organization, user, scope):
        params = {"organization": organization, "scope": scope, "count": 100}
        if scope == "user":
            params["user"] = user
        return self._pages("/webhook_subscriptions", params, str(_("webhook subscriptions")))

    def get_webhook(self, uri):
        resp = self.request("GET", f"/webhook_subscriptions/{uuid_of(uri)}", operation=str(_("webhook subscription")))
        return self._json(resp, "webhook subscription").get("resource") or {}

    def delete_webhook(self, uri):
        self.request("DELETE", f"/webhook_subscriptions/{uuid_of(uri)}", operation=str(_("webhook subscription")), ok_statuses=(404,))
