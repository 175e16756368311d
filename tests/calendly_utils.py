"""Shared fixtures and steps of the Calendly tests: an organiser whose pretix knows the fake Calendly's OAuth app."""
from urllib.parse import urlsplit

import pytest
import requests
from django_scopes import scopes_disabled

from pretix.base.models import Team, User

from pretix_crm_bridge.calendly import config
from pretix_crm_bridge.calendly.models import CalendlyConnection
from pretix_integrations_core.testing.calendly import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PERSONAL_ACCESS_TOKEN


@pytest.fixture
def calendly(organizer, fake_calendly):
    organizer.enable_plugin("pretix_crm_bridge")
    organizer.save()
    for option, value in (("calendly_client_id", DEMO_CLIENT_ID), ("calendly_client_secret", DEMO_CLIENT_SECRET),
                          ("calendly_api_url", fake_calendly.url), ("calendly_auth_url", fake_calendly.url)):
        config.set_global(option, value)
    return fake_calendly


def org_url(organizer, rest=""):
    return f"/control/organizer/{organizer.slug}/{rest}"


def start_oauth(client, organizer, fake):
    """Connect Calendly (control view), then the admin's browser at Calendly's consent page; returns the callback path+query."""
    r = client.post(org_url(organizer, "crm/calendly/connect/"))
    assert r.status_code == 302, r.status_code
    assert r["Location"].startswith(fake.url + "/oauth/authorize?")
    consent = requests.get(r["Location"], allow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    parts = urlsplit(consent.headers["Location"])
    assert parts.path == "/control/crm/calendly/callback/"
    return f"{parts.path}?{parts.query}"


def oauth_connect(client, organizer, fake, django_capture_on_commit_callbacks):
    callback = start_oauth(client, organizer, fake)
    with django_capture_on_commit_callbacks(execute=True):
        r = client.get(callback)
    assert r.status_code == 302, r.content.decode()[:500]
    return callback


def pat_connect(client, organizer, django_capture_on_commit_callbacks, token=DEMO_PERSONAL_ACCESS_TOKEN):
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(org_url(organizer, "crm/calendly/token/"), {"token": token})
    assert r.status_code == 302
    return connection(organizer)


def connection(organizer):
    with scopes_disabled():
        return CalendlyConnection.objects.filter(organizer=organizer).first()


def member(organizer, email, **team_kwargs):
    """A user in a team of its own with the given team flags/permissions."""
    with scopes_disabled():
        u = User.objects.create_user(email, "member-password")
        t = Team.objects.create(organizer=organizer, name=email, **team_kwargs)
        t.members.add(u)
    return u


__all__ = ["calendly", "org_url", "start_oauth", "oauth_connect", "pat_connect", "connection", "member"]
