"""
OAuth2 client-credentials tokens shared by all workers (HelloAsso today; the CRM bridge and Calendly next).

- one token pair per (service, client id) in :class:`~pretix_integrations_core.models.OAuthToken`, both tokens
  encrypted with :mod:`pretix_integrations_core.crypto`;
- the access token is reused until ``margin`` seconds before it expires;
- renewing happens under a row lock (``select_for_update``): across workers one renews, the others wait and then
  use the new token. A refresh token is used first, and the newest refresh token the server returns is stored;
  when the server refuses it (``invalid_grant``), the client credentials are used again;
- :meth:`OAuth2ClientCredentials.request` sends an API request with the token; a 401 renews the token once and
  repeats the request, a 403 is a configuration error (the credentials lack a privilege), never retried.

:class:`OAuth2AuthorizationCode` is the same store for tokens a user granted through the authorization-code flow
(with PKCE, :func:`pkce_pair`), one row per granting account: refresh tokens are single-use and rotate, so a renewal
only ever uses the newest stored one, under the lock, and saves the new pair in the same transaction; a refused
refresh token (``invalid_grant``) means the grant is gone and the user must connect again.

Wrong client credentials raise :class:`OAuthClientRefused` (a configuration error), whose message never contains a secret.
"""
import base64
import hashlib
import logging
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from . import crypto
from .errors import ExternalServiceError, ServiceConfigurationError, ServiceRejected
from .httpclient import HttpClient, json_body

logger = logging.getLogger(__name__)


class OAuthInvalidGrant(ServiceConfigurationError):
    """The refresh token (or authorization grant) was refused: expired, rotated or revoked."""
    kind = "invalid_grant"
    default_message = _("{service} refused the stored refresh token ({operation}).")


class OAuthClientRefused(ServiceConfigurationError):
    """The client id or client secret was refused by the token endpoint."""
    kind = "client_refused"
    default_message = _("{service} refused the client id or client secret ({operation}).")


def _token_error(e: ExternalServiceError):
    return (e.payload or {}).get("error") if isinstance(e.payload, dict) else None


class OAuth2ClientCredentials:
    """
    Tokens of one client at one authorization server, plus authenticated requests to its API.

    ``http`` is the :class:`HttpClient` of the API (its base URL is the only host that ever gets the token);
    ``token_http`` the one of the token endpoint (often the same host), ``token_path`` the path on it.
    """

    #: renew this many seconds before the access token expires
    margin = 60
    #: refresh tokens have no expiry in the token response; HelloAsso's last 30 days
    refresh_lifetime = timedelta(days=29)

    def __init__(self, service: str, *, client_id: str, client_secret: str, http: HttpClient, token_http: HttpClient = None,
                 token_path: str = "/oauth2/token", send_secret_on_refresh: bool = False):
        if not client_id or not client_secret:
            raise ServiceConfigurationError(service, "authentication", detail=str(_("The client id and secret are not configured.")))
        self.service = service
        self.client_id = client_id
        self.client_secret = client_secret
        self.http = http
        self.token_http = token_http or http
        self.token_path = token_path
        self.send_secret_on_refresh = send_secret_on_refresh
        #: whose tokens these are: empty for client credentials (one pair per client)
        self.account = ""
        #: number of requests sent to the token endpoint by this object (reports and benchmarks count API calls)
        self.token_calls = 0

    # -- tokens ------------------------------------------------------------------------------------

    def _row(self):
        from .models import OAuthToken

        row = OAuthToken.objects.filter(**self._key()).first()
        if row is None:
            with transaction.atomic():
                row, _created = OAuthToken.objects.get_or_create(**self._key())
        return row

    def _key(self):
        return {"service": self.service, "client_id": self.client_id, "account": self.account}

    def _lock(self, row):
        """
        The row, locked until the end of the current transaction: one renewal at a time across workers.

        The row is written first (an UPDATE takes the write lock on every database, SQLite included, where
        ``select_for_update`` does nothing), then read again with ``select_for_update``.
        """
        from .models import OAuthToken

        OAuthToken.objects.filter(pk=row.pk).update(updated=now())
        return OAuthToken.objects.select_for_update().get(pk=row.pk)

    def _usable(self, row):
        if not row.access_token or not row.access_expires or row.access_expires - timedelta(seconds=self.margin) <= now():
            return None
        try:
            return crypto.decrypt(row.access_token)
        except crypto.SecretError:
            return None

    def access_token(self) -> str:
        """A valid access token, renewed if it expires within ``margin`` seconds."""
        row = self._row()
        token = self._usable(row)
        if token:
            return token
        with transaction.atomic():
            row = self._lock(row)
            token = self._usable(row)  # another worker may have renewed it while we waited for the lock
            if token:
                return token
            return self._renew(row)

    def invalidate(self, token: str):
        """Forget ``token`` (the server said 401) unless another worker already replaced it."""
        from .models import OAuthToken

        with transaction.atomic():
            row = OAuthToken.objects.select_for_update().filter(**self._key()).first()
            if row is not None and self._usable(row) == token:
                row.access_expires = None
                row.save(update_fields=["access_expires", "updated"])

    def _renew(self, row) -> str:
        refresh = None
        if row.refresh_token and row.refresh_expires and row.refresh_expires > now():
            try:
                refresh = crypto.decrypt(row.refresh_token)
            except crypto.SecretError:
                refresh = None
        data = None
        if refresh:
            form = {"grant_type": "refresh_token", "client_id": self.client_id, "refresh_token": refresh}
            if self.send_secret_on_refresh:
                form["client_secret"] = self.client_secret
            try:
                data = self._token_request(form, retry_safe=False)
            except OAuthInvalidGrant:
                logger.info("%s: refresh token refused, using the client credentials again", self.service)
                data = None
        if data is None:
            data = self._token_request({"grant_type": "client_credentials", "client_id": self.client_id,
                                        "client_secret": self.client_secret}, retry_safe=True)
        access = data.get("access_token")
        try:
            expires_in = int(data.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0
        if not access or not isinstance(access, str):
            from .errors import ServiceBadResponse
            raise ServiceBadResponse(self.service, "authentication")
        row.access_token = crypto.encrypt(access)
        row.access_expires = now() + timedelta(seconds=expires_in if expires_in > 0 else 1800)
        if data.get("refresh_token"):
            row.refresh_token = crypto.encrypt(data["refresh_token"])
            row.refresh_expires = now() + self.refresh_lifetime
        elif refresh is None:
            row.refresh_token, row.refresh_expires = "", None
        row.save()
        return access

    def _token_request(self, form, *, retry_safe):
        self.token_calls += 1
        try:
            resp = self.token_http.request("POST", self.token_path, operation="authentication", data=form, retry_safe=retry_safe,
                                           headers={"Accept": "application/json"})
        except (ServiceRejected, ServiceConfigurationError) as e:
            error = _token_error(e)
            if error in ("invalid_grant", "access_denied") and form["grant_type"] == "refresh_token":
                raise OAuthInvalidGrant(self.service, "authentication", status=e.status) from None
            if error in ("unauthorized_client", "invalid_client") or e.status in (400, 401, 403):
                raise OAuthClientRefused(self.service, "authentication", status=e.status) from None
            raise
        data = json_body(resp, self.service, "authentication")
        if not isinstance(data, dict):
            from .errors import ServiceBadResponse
            raise ServiceBadResponse(self.service, "authentication", status=resp.status_code)
        return data

    # -- API requests ------------------------------------------------------------------------------

    def request(self, method, path, *, operation, **kwargs):
        """``HttpClient.request`` with ``Authorization: Bearer``; a 401 renews the token once and repeats the request."""
        extra_headers = kwargs.pop("headers", None) or {}
        token = self.access_token()
        for attempt in (1, 2):
            headers = dict(extra_headers)  # built fresh for each attempt
            headers["Authorization"] = f"Bearer {token}"
            try:
                return self.http.request(method, path, operation=operation, headers=headers, **kwargs)
            except ServiceConfigurationError as e:
                if e.status == 401 and attempt == 1:
                    self.invalidate(token)
                    token = self.access_token()
                    continue
                raise


def pkce_pair():
    """``(code_verifier, code_challenge)`` for PKCE with ``code_challenge_method=S256`` (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class OAuth2AuthorizationCode(OAuth2ClientCredentials):
    """
    Tokens that one account granted to our client through the authorization-code flow (e.g. an organiser's Calendly).

    - :meth:`exchange_code` turns the code of the redirect into tokens and stores them (encrypted);
    - :meth:`access_token` renews with the refresh token only, under the row lock; the rotated refresh token is saved
      in the same transaction, so an old refresh token is never sent again. ``invalid_grant`` raises
      :class:`OAuthInvalidGrant` (the user must connect again), nothing else is tried;
    - :meth:`revoke` revokes both tokens at the server and forgets them.
    """

    def __init__(self, service: str, *, account: str, client_id: str, client_secret: str, http: HttpClient, token_http: HttpClient = None,
                 token_path: str = "/oauth/token", revoke_path: str = "/oauth/revoke"):
        super().__init__(service, client_id=client_id, client_secret=client_secret, http=http, token_http=token_http,
                         token_path=token_path, send_secret_on_refresh=True)
        if not account:
            raise ValueError("an authorization-code token needs the account it belongs to")
        self.account = account
        self.revoke_path = revoke_path

    def _client_form(self):
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def is_connected(self) -> bool:
        from .models import OAuthToken

        return OAuthToken.objects.filter(**self._key()).exclude(refresh_token="").exists()

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str = None) -> dict:
        """Exchange an authorization code (single-use) for tokens, store them and return the token response."""
        from .models import OAuthToken

        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **self._client_form()}
        if code_verifier:
            form["code_verifier"] = code_verifier
        try:
            data = self._token_request(form, retry_safe=False)
        except OAuthClientRefused as e:
            if e.status == 400:  # RFC 6749: a refused code is a 400 invalid_grant
                raise OAuthInvalidGrant(self.service, "authentication", status=400) from None
            raise
        with transaction.atomic():
            row, _created = OAuthToken.objects.get_or_create(**self._key())
            row = self._lock(row)
            self._store(row, data, require_refresh=True)
        return data

    def _store(self, row, data, *, require_refresh):
        from .errors import ServiceBadResponse

        access, refresh = data.get("access_token"), data.get("refresh_token")
        if not access or not isinstance(access, str) or (require_refresh and not refresh):
            raise ServiceBadResponse(self.service, "authentication")
        try:
            expires_in = int(data.get("expires_in") or 0)
        except (TypeError, ValueError):
            expires_in = 0
        row.access_token = crypto.encrypt(access)
        row.access_expires = now() + timedelta(seconds=expires_in if expires_in > 0 else 1800)
        if refresh:
            row.refresh_token = crypto.encrypt(refresh)
            row.refresh_expires = None  # single-use, no expiry until used
        row.save()
        return access

    def _renew(self, row) -> str:
        try:
            refresh = crypto.decrypt(row.refresh_token) if row.refresh_token else None
        except crypto.SecretError:
            refresh = None
        if not refresh:
            raise OAuthInvalidGrant(self.service, "authentication")
        data = self._token_request({"grant_type": "refresh_token", "refresh_token": refresh, **self._client_form()}, retry_safe=False)
        return self._store(row, data, require_refresh=False)

    def _token_request(self, form, *, retry_safe):
        try:
            return super()._token_request(form, retry_safe=retry_safe)
        except OAuthClientRefused as e:
            # 400 invalid_grant of a refresh is mapped by the parent; a 400 without it is still a dead grant, not a bad client
            if form["grant_type"] == "refresh_token" and e.status == 400:
                raise OAuthInvalidGrant(self.service, "authentication", status=400) from None
            raise

    def revoke(self):
        """Revoke the stored tokens at the server (best effort for each) and forget them. Returns the errors met."""
        from .models import OAuthToken

        errors = []
        with transaction.atomic():
            row = OAuthToken.objects.select_for_update().filter(**self._key()).first()
            if row is None:
                return errors
            for stored in (row.refresh_token, row.access_token):
                try:
                    token = crypto.decrypt(stored) if stored else None
                except crypto.SecretError:
                    token = None
                if not token:
                    continue
                try:
                    self.token_calls += 1
                    self.token_http.request("POST", self.revoke_path, operation="revocation", data={"token": token, **self._client_form()},
                                            retry_safe=True, headers={"Accept": "application/json"})
                except ExternalServiceError as e:
                    errors.append(e)
            row.delete()
        return errors
