"""
The OAuth consent redirect in a real headless browser (Debian's chromium, Playwright): pretix's control panel → the
Calendly simulator's consent page → back to pretix, then a booking made on the simulator arrives by webhook.
"""
import re

import pytest
from django_scopes import scopes_disabled

from pretix_crm_bridge.calendly import config
from pretix_crm_bridge.calendly.models import CalendlyConnection, Prospect
from pretix_integrations_core.testing.calendly import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, FakeCalendly

from .test_sortir_browser import CHROMIUM, browser_page  # NOQA: F401 - the shared browser fixture

pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium package (apt-get install chromium)")


@pytest.mark.django_db(transaction=True)
def test_connect_calendly_in_a_browser_and_receive_a_booking(live_server, browser_page, organizer, admin_user,  # NOQA: F811
                                                             tmp_path, settings):
    settings.SITE_URL = live_server.url  # pytest-django's settings fixture: restored after the test
    organizer.enable_plugin("pretix_crm_bridge")
    organizer.save()
    with FakeCalendly(demo=True) as fake:
        for option, value in (("calendly_client_id", DEMO_CLIENT_ID), ("calendly_client_secret", DEMO_CLIENT_SECRET),
                              ("calendly_api_url", fake.url), ("calendly_auth_url", fake.url)):
            config.set_global(option, value)
        page = browser_page
        page.goto(f"{live_server.url}/control/login")
        page.fill("input[name=email]", "admin@example.org")
        page.fill("input[name=password]", "admin-password")
        page.locator("button[type=submit]").first.click()
        page.wait_for_load_state("networkidle")
        page.goto(f"{live_server.url}/control/organizer/{organizer.slug}/crm/calendly/")
        page.get_by_role("button", name="Connect Calendly").click()
        page.get_by_text("Allow pretix to access your Calendly account?").wait_for(timeout=10000)
        assert page.url.startswith(fake.url + "/oauth/authorize?")
        page.get_by_role("link", name="Allow").click()
        page.get_by_text("Calendly is connected (alex.host@example.org).").wait_for(timeout=20000)
        assert re.match(rf"{re.escape(live_server.url)}/control/organizer/{organizer.slug}/crm/calendly/$", page.url)
        assert "webhook subscription active" in page.content()
        page.screenshot(path=str(tmp_path / "calendly-connected.png"), full_page=True)

        # somebody books on the simulator: Calendly's webhook reaches pretix at once
        page.goto(f"{fake.url}/demo/book")
        page.fill("input[name=name]", "Nora Martin")
        page.fill("input[name=email]", "nora@example.org")
        page.get_by_role("button", name="Book").click()
        page.get_by_text("Webhook deliveries: 202").wait_for(timeout=20000)
        with scopes_disabled():
            assert CalendlyConnection.objects.get(organizer=organizer).webhook_uri
            p = Prospect.objects.get(organizer=organizer, email="nora@example.org")
            assert p.meetings.count() == 1
        page.goto(f"{live_server.url}/control/organizer/{organizer.slug}/prospects/")
        assert "nora@example.org" in page.content() and "Nora Martin" in page.content()
