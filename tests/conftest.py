import inspect
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import translation
from django.utils.timezone import now
from django_scopes import scopes_disabled

from pretix.base.models import Event, Item, Organizer, Quota, Team, User

from pretix_integrations_core.httpclient import close_sessions

pytest_plugins = ["pretix_integrations_core.testing.fixtures", "tests.sortir_utils", "tests.helloasso_utils", "tests.crm_utils",
                  "tests.calendly_utils"]


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    # As pretix core's conftest: plain fixtures run with django-scopes disabled.
    if inspect.isgeneratorfunction(fixturedef.func):
        yield
    else:
        with scopes_disabled():
            yield


@pytest.fixture(autouse=True)
def reset_locale():
    translation.activate("en")


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_connections():
    """A fake server's port may be reused by the next test's server: never reuse a pooled connection across tests."""
    yield
    close_sessions()


@pytest.fixture
def organizer():
    return Organizer.objects.create(name="Association Demo", slug="demo")


@pytest.fixture
def event(organizer):
    ev = Event.objects.create(
        organizer=organizer, name="Concert", slug="concert",
        date_from=now() + timedelta(days=30), live=True,
        plugins="pretix.plugins.banktransfer,pretix.plugins.manualpayment",
    )
    return ev


@pytest.fixture
def item(event):
    it = Item.objects.create(event=event, name="Ticket", default_price=Decimal("16.00"), admission=True)
    q = Quota.objects.create(event=event, name="Tickets", size=100)
    q.items.add(it)
    return it


@pytest.fixture
def admin_user(organizer):
    u = User.objects.create_user("admin@example.org", "admin-password")
    t = Team.objects.create(
        organizer=organizer, name="Admins",
        all_events=True, all_event_permissions=True, all_organizer_permissions=True,
    )
    t.members.add(u)
    return u


@pytest.fixture
def admin_client(client, admin_user):
    assert client.login(email="admin@example.org", password="admin-password")
    return client
