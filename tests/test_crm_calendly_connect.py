"""Connecting Calendly through the control views, against the fake Calendly over HTTP (OAuth + PKCE + state, PAT, webhooks)."""
import pytest
from django.conf import settings
from django.test import Client
from django_scopes import scopes_disabled

from pretix.base.models import LogEntry

from pretix_crm_bridge.calendly.models import Prospect
from pretix_crm_bridge.webhook_secrets import path_secret
from pretix_integrations_core import crypto
from pretix_integrations_core.models import OAuthToken
from pretix_integrations_core.testing.calendly import DEMO_CLIENT_SECRET

from .calendly_utils import connection, oauth_connect, org_url, pat_connect, start_oauth


@pytest.mark.django_db
def test_oauth_dance_connects_subscribes_and_syncs(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    conn = connection(organizer)
    assert conn.account_email == "alex.host@example.org"
    assert conn.organization_uri == calendly.organization_uri and conn.user_uri == calendly.user_uri
    # PKCE: the token request carried a verifier matching the challenge (the fake checks it), the redirect URI is pretix's own
    token_req = calendly.received("POST", r"^/oauth/token$")[0]
    assert token_req.form["grant_type"] == "authorization_code" and token_req.form["code_verifier"]
    assert token_req.form["redirect_uri"] == f"{settings.SITE_URL}/control/crm/calendly/callback/"  # pretix's URL, not the Host header
    authorize = calendly.received("GET", r"^/oauth/authorize$")[0]
    assert authorize.arg("code_challenge_method") == "S256" and authorize.arg("state")
    # tokens encrypted in the core's store, one row for this organiser
    row = OAuthToken.objects.get(service="calendly", account=f"org-{organizer.pk}")
    assert crypto.is_encrypted(row.access_token) and crypto.is_encrypted(row.refresh_token)
    assert calendly.refresh_tokens[crypto.decrypt(row.refresh_token)] == "active"
    # the webhook subscription of the organisation, with our signing key (encrypted here)
    hook = next(iter(calendly.hooks.values()))
    assert hook["resource"]["events"] == ["invitee.created", "invitee.canceled"] and hook["resource"]["scope"] == "organization"
    assert conn.webhook_uri == hook["resource"]["uri"]
    assert crypto.decrypt(conn.webhook_signing_key) == hook["signing_key"]
    assert hook["resource"]["callback_url"] == f"{settings.SITE_URL}/_crm/calendly/{organizer.slug}/{path_secret(organizer, 'calendly')}/"
    # the first sync ran: the seeded bookings are prospects
    with scopes_disabled():
        assert set(Prospect.objects.filter(organizer=organizer).values_list("email", flat=True)) == {
            "guest1@example.org", "guest2@example.org", "guest3@example.org", "guest4@example.org"}
        assert LogEntry.objects.filter(action_type="pretix_crm_bridge.calendly.connected", organizer_id=organizer.pk).exists()
    page = admin_client.get(org_url(organizer, "crm/calendly/")).content.decode()
    assert "alex.host@example.org" in page and "webhook subscription active" in page
    assert DEMO_CLIENT_SECRET not in page and hook["signing_key"] not in page


@pytest.mark.django_db
def test_callback_replay_is_refused(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    callback = oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    r = admin_client.get(callback)
    assert r.status_code == 400
    assert len(calendly.received("POST", r"^/oauth/token$")) == 1  # the replayed code never reached Calendly


@pytest.mark.django_db
def test_callback_with_wrong_or_missing_state_is_refused(admin_client, organizer, calendly):
    callback = start_oauth(admin_client, organizer, calendly)
    path, query = callback.split("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    assert admin_client.get(f"{path}?code={params['code']}&state=forged").status_code == 400
    assert admin_client.get(f"{path}?code={params['code']}").status_code == 400
    assert not calendly.received("POST", r"^/oauth/token$")
    assert connection(organizer) is None


@pytest.mark.django_db
def test_state_is_bound_to_the_admin_session(admin_client, admin_user, organizer, calendly):
    callback = start_oauth(admin_client, organizer, calendly)
    other = Client()
    assert other.login(email="admin@example.org", password="admin-password")  # same user, another session
    assert other.get(callback).status_code == 400
    assert not calendly.received("POST", r"^/oauth/token$")


@pytest.mark.django_db
def test_free_plan_says_polling_is_used(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    calendly.paid_plan = False
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    conn = connection(organizer)
    assert not conn.webhook_uri and not conn.webhook_signing_key
    assert "periodic sync" in conn.webhook_note
    assert "paid Calendly plan" in admin_client.get(org_url(organizer, "crm/calendly/")).content.decode()


@pytest.mark.django_db
def test_disconnect_revokes_tokens_and_deletes_subscription(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    oauth_connect(admin_client, organizer, calendly, django_capture_on_commit_callbacks)
    row = OAuthToken.objects.get(service="calendly", account=f"org-{organizer.pk}")
    refresh, access = crypto.decrypt(row.refresh_token), crypto.decrypt(row.access_token)
    r = admin_client.post(org_url(organizer, "crm/calendly/disconnect/"))
    assert r.status_code == 302
    assert not calendly.hooks
    assert calendly.refresh_tokens[refresh] == "revoked" and calendly.access_tokens[access]["revoked"]
    assert not OAuthToken.objects.filter(service="calendly").exists()
    conn = connection(organizer)
    assert not conn.organization_uri and not conn.webhook_uri
    with scopes_disabled():
        assert Prospect.objects.filter(organizer=organizer).count() == 4  # the prospects stay


@pytest.mark.django_db
def test_personal_access_token(admin_client, organizer, calendly, django_capture_on_commit_callbacks):
    conn = pat_connect(admin_client, organizer, django_capture_on_commit_callbacks)
    assert conn.method == "pat" and crypto.is_encrypted(conn.personal_token)
    assert conn.account_email == "alex.host@example.org" and conn.webhook_uri
    assert not calendly.received("POST", r"^/oauth/token$")
    with scopes_disabled():
        assert Prospect.objects.filter(organizer=organizer).count() == 4
    # a wrong token is refused with a message, nothing stored
    r = admin_client.post(org_url(organizer, "crm/calendly/token/"), {"token": "wrong"}, follow=True)
    assert "did not accept this token" in r.content.decode()
    assert crypto.decrypt(connection(organizer).personal_token) != "wrong"


@pytest.mark.django_db
def test_connect_without_oauth_app_configured(admin_client, organizer, calendly):
    from pretix_crm_bridge.calendly import config
    config.set_global("calendly_client_secret", "")
    r = admin_client.post(org_url(organizer, "crm/calendly/connect/"), follow=True)
    assert "not configured" in r.content.decode()
    assert not calendly.received("GET", r"^/oauth/authorize$")


@pytest.mark.django_db
def test_callback_refused_when_the_admin_lost_the_permission_meanwhile(admin_client, admin_user, organizer, calendly):
    callback = start_oauth(admin_client, organizer, calendly)
    with scopes_disabled():
        team = admin_user.teams.get()
        team.all_organizer_permissions = False
        team.save()
    assert admin_client.get(callback).status_code == 403
    assert not calendly.received("POST", r"^/oauth/token$") and connection(organizer) is None


@pytest.mark.django_db
def test_calendly_denied_access(admin_client, organizer, calendly):
    callback = start_oauth(admin_client, organizer, calendly)
    state = callback.split("state=")[1]
    r = admin_client.get(f"/control/crm/calendly/callback/?error=access_denied&state={state}", follow=True)
    assert "did not grant access" in r.content.decode()
    assert connection(organizer) is None


@pytest.mark.django_db
def test_oauth_app_from_pretix_cfg_wins_over_global_settings(calendly, monkeypatch):
    """pretix.cfg ``[pretix_crm_bridge] calendly_client_id`` (or its environment form, read by pretix's CONFIG_FILE)."""
    from pretix.base.settings import GlobalSettingsObject

    from pretix_crm_bridge.calendly import config
    monkeypatch.setenv("PRETIX_PRETIX_CRM_BRIDGE_CALENDLY_CLIENT_ID", "from-the-file")
    assert config.get("calendly_client_id") == "from-the-file"
    assert config.get("calendly_client_secret") == DEMO_CLIENT_SECRET  # not in the file: pretix's global settings
    assert crypto.is_encrypted(GlobalSettingsObject().settings.get("pretix_crm_bridge_calendly_client_secret", as_type=str))


@pytest.mark.django_db
def test_administrator_sets_the_oauth_app_in_pretix_global_settings(client, organizer):
    from pretix.base.models import User
    from pretix.base.models.auth import StaffSession
    from pretix.base.settings import GlobalSettingsObject

    from pretix_crm_bridge.calendly import config
    User.objects.create_user("root@example.org", "root-password", is_staff=True)
    assert client.login(email="root@example.org", password="root-password")
    StaffSession.objects.create(user=User.objects.get(email="root@example.org"), session_key=client.session.session_key)
    page = client.get("/control/global/settings/").content.decode()
    assert "Calendly OAuth client id" in page and "/control/crm/calendly/callback/" in page
    data = {"pretix_crm_bridge_calendly_client_id": "admin-client", "pretix_crm_bridge_calendly_client_secret": "admin-secret",
            "payment_paypal_connect_endpoint": "live"}  # a required field of pretix's own form
    r = client.post("/control/global/settings/", data)
    assert r.status_code == 302, r.context["form"].errors if r.context else r.status_code
    stored = GlobalSettingsObject().settings.get("pretix_crm_bridge_calendly_client_secret", as_type=str)
    assert crypto.is_encrypted(stored) and "admin-secret" not in stored
    assert config.get("calendly_client_id") == "admin-client" and config.get("calendly_client_secret") == "admin-secret"
    page = client.get("/control/global/settings/").content.decode()
    assert "admin-secret" not in page and stored not in page
    # saving again with the masked value keeps the secret
    client.post("/control/global/settings/", {**data, "pretix_crm_bridge_calendly_client_secret": "*****"})
    assert config.get("calendly_client_secret") == "admin-secret"
