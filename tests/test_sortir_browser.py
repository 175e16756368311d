"""
The live card check in a real headless browser: Debian's chromium driven by Playwright (no browser download).
Skipped only where no chromium is installed (.ci/run installs it).
"""
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="needs Debian's chromium package (apt-get install chromium)")


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
        ])
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_live_check_in_checkout_page(live_server, browser_page, sortir_event, sortir_item, fake_apras, tmp_path):
    from django.conf import settings

    settings.SITE_URL = live_server.url
    page = browser_page
    page.goto(f"{live_server.url}/{sortir_event.organizer.slug}/{sortir_event.slug}/")
    page.fill(f"input[name=item_{sortir_item.pk}]", "1")
    page.locator("#btn-add-to-cart").click()
    page.wait_for_load_state("networkidle")
    page.goto(f"{live_server.url}/{sortir_event.organizer.slug}/{sortir_event.slug}/checkout/questions/")
    card = page.locator("input[data-sortir-card]")
    card.wait_for()

    card.fill("9999999999")
    feedback = page.locator(".sortir-feedback")
    feedback.filter(has_text="unknown or not eligible").wait_for(timeout=10000)

    card.fill("1000-0000-01")
    feedback.filter(has_text="Sortir! card accepted (ending in 0001)").wait_for(timeout=10000)
    page.screenshot(path=str(tmp_path / "sortir-live-check.png"), full_page=True)

    # nothing of the card number is kept in the browser's storage
    storage = page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie])")
    assert "1000000001" not in storage and "0000-01" not in storage
    assert len(fake_apras.received("GET")) == 2
