"""Shared fixtures of the HelloAsso bridge tests: an organiser connected to the fake HelloAsso, an event using the plugin."""
import pytest
from django_scopes import scopes_disabled

from pretix.base.models import Team, User

from pretix_helloasso_bridge.models import RemoteObject, SyncReport
from pretix_helloasso_bridge.sync import run_sync
from pretix_integrations_core import crypto
from pretix_integrations_core.testing.billetweb import DEMO_KEY as BW_KEY, DEMO_USER as BW_USER
from pretix_integrations_core.testing.helloasso import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORGANIZATION
from pretix_integrations_core.testing.weezevent import DEMO_API_KEY as WZ_KEY, DEMO_PASSWORD as WZ_PASSWORD, DEMO_USERNAME as WZ_USER


@pytest.fixture
def ha_connected(organizer, fake_helloasso):
    s = organizer.settings
    s.set("pretix_helloasso_bridge_client_id", DEMO_CLIENT_ID)
    crypto.set_secret(s, "pretix_helloasso_bridge_client_secret", DEMO_CLIENT_SECRET)
    s.set("pretix_helloasso_bridge_organization_slug", DEMO_ORGANIZATION)
    s.set("pretix_helloasso_bridge_base_url", fake_helloasso.url)
    return fake_helloasso


@pytest.fixture
def ha_event(event, ha_connected):
    event.enable_plugin("pretix_helloasso_bridge")
    event.save()
    return event


@pytest.fixture
def bw_connected(organizer, fake_billetweb):
    s = organizer.settings
    s.set("pretix_helloasso_bridge_billetweb_user", BW_USER)
    crypto.set_secret(s, "pretix_helloasso_bridge_billetweb_secret_key", BW_KEY)
    s.set("pretix_helloasso_bridge_billetweb_url", fake_billetweb.url)
    return fake_billetweb


@pytest.fixture
def bw_event(event, bw_connected):
    event.enable_plugin("pretix_helloasso_bridge")
    event.save()
    return event


@pytest.fixture
def wz_connected(organizer, fake_weezevent):
    s = organizer.settings
    crypto.set_secret(s, "pretix_helloasso_bridge_weezevent_api_secret_key", WZ_KEY)
    s.set("pretix_helloasso_bridge_weezevent_username", WZ_USER)
    crypto.set_secret(s, "pretix_helloasso_bridge_weezevent_password_secret", WZ_PASSWORD)
    s.set("pretix_helloasso_bridge_weezevent_url", fake_weezevent.url)
    return fake_weezevent


@pytest.fixture
def wz_event(event, wz_connected):
    event.enable_plugin("pretix_helloasso_bridge")
    event.save()
    return event


def team_client(client, organizer, email, **perms):
    """Log ``client`` in as a member of a new team of ``organizer`` with exactly ``perms``."""
    user = User.objects.create_user(email, "team-password")
    team = Team.objects.create(organizer=organizer, name=email, all_events=True, **perms)
    team.members.add(user)
    assert client.login(email=email, password="team-password")
    return client


def orders_of(event):
    """{remote order id: pretix order} of what the bridge imported into ``event``."""
    with scopes_disabled():
        return {ro.remote_id: ro.order for ro in RemoteObject.objects.filter(event=event, kind="order").select_related("order")}


def sync(event, **kw):
    """Run a sync of ``event`` and insist it succeeded."""
    report = run_sync(event, **kw)
    assert report.state == SyncReport.SUCCESS, report.error
    return report


def position(event, remote_id):
    """The pretix position imported for the platform's ticket ``remote_id``."""
    with scopes_disabled():
        return RemoteObject.objects.get(event=event, kind="position", remote_id=str(remote_id)).position
