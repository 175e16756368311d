import re

import pytest

from pretix_integrations_core import crypto


def settings_url(org):
    return f"/control/organizer/{org.slug}/sortir/"


def run_test(admin_client, organizer):
    return admin_client.post(settings_url(organizer) + "test/", follow=True).content.decode()


@pytest.fixture
def configured(organizer, fake_apras):
    organizer.settings.set("pretix_sortir_api_url", fake_apras.url)
    crypto.set_secret(organizer.settings, "pretix_sortir_api_token_secret", fake_apras.token)
    return fake_apras


@pytest.mark.django_db
def test_connection_token_accepted(admin_client, organizer, configured):
    assert "Connection to APRAS works and the token was accepted." in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_token_refused(admin_client, organizer, configured):
    crypto.set_secret(organizer.settings, "pretix_sortir_api_token_secret", "wrong")
    assert "APRAS refused the token (HTTP 403)" in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_unreachable(admin_client, organizer, configured):
    organizer.settings.set("pretix_sortir_api_url", "http://127.0.0.1:9")
    assert "APRAS could not be reached or did not answer within 2 s" in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_slow(admin_client, organizer, configured):
    organizer.settings.set("pretix_sortir_timeout", 1)
    configured.fail_next(delay=2, times=3)
    assert "did not answer within 1 s" in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_unexpected_answer(admin_client, organizer, configured):
    configured.fail_next(status=200, body="<html>maintenance</html>")
    assert "APRAS answered in an unexpected way" in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_connection_not_configured(admin_client, organizer):
    assert "Enter the APRAS API URL and token first." in run_test(admin_client, organizer)


@pytest.mark.django_db
def test_settings_validation(admin_client, organizer, settings):
    base = {"pretix_sortir_timeout": "2", "pretix_sortir_usage_retention_days": "90", "pretix_sortir_audit_retention_days": "365"}
    r = admin_client.post(settings_url(organizer), {**base, "pretix_sortir_api_url": "https://api.example.org",
                                                    "pretix_sortir_timeout": "30"}, follow=True).content.decode()
    assert "We could not save your changes" in r and "Enter the API token that goes with this URL." in r
    assert "Ensure this value is less than or equal to 10." in r
    settings.ALLOW_HTTP_TO_PRIVATE_NETWORKS = False
    r = admin_client.post(settings_url(organizer), {**base, "pretix_sortir_api_url": "http://api.example.org",
                                                    "pretix_sortir_api_token_secret": "t"}, follow=True).content.decode()
    assert "The URL must start with https://" in r


@pytest.mark.django_db
def test_defaults_and_organizer_navigation(admin_client, organizer):
    page = admin_client.get(settings_url(organizer)).content.decode()
    assert 'name="pretix_sortir_timeout" value="2"' in page
    assert 'name="pretix_sortir_usage_retention_days" value="90"' in page
    assert 'name="pretix_sortir_audit_retention_days" value="365"' in page
    tag = re.search(r'<input[^>]*name="pretix_sortir_release_on_cancel"[^>]*>', page).group(0)
    assert tag.endswith("checked>"), tag
    # the standard APRAS partner API returns no holder name: pre-filling is off until the organiser says otherwise
    tag = re.search(r'<input[^>]*name="pretix_sortir_prefill_names"[^>]*>', page).group(0)
    assert "checked" not in tag, tag
    assert "Only for an APRAS account that returns the card holder&#x27;s name" in page
    organizer.enable_plugin("pretix_sortir")  # an event-and-organiser plugin: its organiser menu entry needs this
    organizer.save()
    org_page = admin_client.get(f"/control/organizer/{organizer.slug}/edit").content.decode()
    assert settings_url(organizer) in org_page
