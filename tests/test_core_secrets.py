import logging

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django_scopes import scopes_disabled

from pretix.base.models import LogEntry

from pretix_integrations_core import crypto

TOKEN = "apras-token-7f3c9e1b5d"


@pytest.fixture
def key_env(monkeypatch):
    """Set the configured keys (pretix reads PRETIX_INTEGRATIONS_ENCRYPTION_KEYS at every call)."""
    def set_keys(*keys):
        monkeypatch.setenv("PRETIX_INTEGRATIONS_ENCRYPTION_KEYS", ",".join(keys))
    return set_keys


def settings_url(org):
    return f"/control/organizer/{org.slug}/sortir/"


def save_settings(client, org, **overrides):
    data = {
        "pretix_sortir_api_url": "https://api.example.org",
        "pretix_sortir_api_token_secret": TOKEN,
        "pretix_sortir_timeout": "2",
        "pretix_sortir_prefill_names": "on",
        "pretix_sortir_release_on_cancel": "on",
        "pretix_sortir_usage_retention_days": "90",
        "pretix_sortir_audit_retention_days": "365",
    }
    data.update(overrides)
    return client.post(settings_url(org), data, follow=True)


def raw_settings_rows():
    with connection.cursor() as c:
        c.execute("SELECT value FROM pretixbase_organizer_settingsstore")
        return [r[0] for r in c.fetchall()]


def test_roundtrip_and_authenticated(key_env):
    key_env(Fernet.generate_key().decode())
    stored = crypto.encrypt(TOKEN)
    assert TOKEN not in stored and stored.startswith("enc1:")
    assert crypto.decrypt(stored) == TOKEN
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(crypto.SecretUndecryptable):
        crypto.decrypt(tampered)
    with pytest.raises(crypto.SecretUndecryptable):
        crypto.decrypt(TOKEN)  # clear text is never accepted as a stored secret


def test_rotation_first_key_encrypts_all_decrypt(key_env):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    key_env(old)
    stored_old = crypto.encrypt(TOKEN)
    key_env(new, old)
    assert crypto.decrypt(stored_old) == TOKEN
    rotated = crypto.rotate(stored_old)
    key_env(new)
    assert crypto.decrypt(rotated) == TOKEN
    with pytest.raises(crypto.SecretUndecryptable) as e:
        crypto.decrypt(stored_old)
    assert str(e.value) == "The encryption key changed: enter the secret again."


def test_missing_and_invalid_key(key_env, monkeypatch):
    monkeypatch.delenv("PRETIX_INTEGRATIONS_ENCRYPTION_KEYS")
    with pytest.raises(crypto.SecretKeyMissing):
        crypto.encrypt(TOKEN)
    key_env("not-a-key")
    with pytest.raises(crypto.SecretKeyInvalid) as e:
        crypto.encrypt(TOKEN)
    assert "not-a-key" not in str(e.value)


def test_keyed_digest_is_keyed_and_stable():
    a = crypto.keyed_digest("1234567890", "card")
    assert a == crypto.keyed_digest("1234567890", "card")
    assert a != crypto.keyed_digest("1234567890", "other-purpose")
    assert "1234567890" not in a and len(a) >= 40


@pytest.mark.django_db
def test_secret_not_readable_in_db_logs_or_page(admin_client, organizer, caplog):
    caplog.set_level(logging.DEBUG)
    r = save_settings(admin_client, organizer)
    assert r.status_code == 200 and b"Your changes have been saved." in r.content

    # database: the token is nowhere in clear, the stored value is our ciphertext
    rows = raw_settings_rows()
    assert not any(TOKEN in (v or "") for v in rows)
    with scopes_disabled():
        stored = organizer.settings.get("pretix_sortir_api_token_secret")
        assert stored.startswith("enc1:") and crypto.decrypt(stored) == TOKEN
        # pretix's own log entry of the change masks the key
        entries = LogEntry.objects.filter(action_type="pretix.organizer.settings")
        assert entries.exists()
        assert not any(TOKEN in (e.data or "") for e in entries)
        assert not any(stored in (e.data or "") for e in entries)

    # the settings page never renders the value back, neither clear nor encrypted
    page = admin_client.get(settings_url(organizer)).content.decode()
    assert TOKEN not in page and stored not in page
    assert 'value="*****"' in page

    # saving again with the mask keeps the secret unchanged
    save_settings(admin_client, organizer, pretix_sortir_api_token_secret="*****", pretix_sortir_timeout="3")
    with scopes_disabled():
        organizer.settings.flush()
        assert organizer.settings.get("pretix_sortir_api_token_secret") == stored
        assert organizer.settings.get("pretix_sortir_timeout", as_type=int) == 3

    # no log record produced while storing and using it contains the token
    assert not any(TOKEN in rec.getMessage() for rec in caplog.records)


@pytest.mark.django_db
def test_secret_used_for_requests_never_logged(admin_client, organizer, fake_apras, caplog):
    caplog.set_level(logging.DEBUG)
    save_settings(admin_client, organizer, pretix_sortir_api_url=fake_apras.url, pretix_sortir_api_token_secret=fake_apras.token)
    r = admin_client.post(f"/control/organizer/{organizer.slug}/sortir/test/", follow=True)
    assert b"token was accepted" in r.content
    assert fake_apras.received("GET")[0].header("Authorization") == fake_apras.token
    assert not any(fake_apras.token in rec.getMessage() for rec in caplog.records)
    assert fake_apras.token not in r.content.decode()


@pytest.mark.django_db
def test_wrong_key_gives_clear_error_in_control_panel(admin_client, organizer, key_env):
    save_settings(admin_client, organizer)
    key_env(Fernet.generate_key().decode())  # the administrator replaced the key without keeping the old one
    page = admin_client.get(settings_url(organizer)).content.decode()
    assert "The encryption key changed: enter the secret again." in page
    assert 'value="*****"' not in page
    # The connection test says so too, instead of sending an empty token
    r = admin_client.post(f"/control/organizer/{organizer.slug}/sortir/test/", follow=True)
    assert "The encryption key changed: enter the secret again." in r.content.decode()
    # Entering it again fixes it
    save_settings(admin_client, organizer, pretix_sortir_api_token_secret="new-token-after-key-change")
    with scopes_disabled():
        organizer.settings.flush()
        assert crypto.get_secret(organizer.settings, "pretix_sortir_api_token_secret") == "new-token-after-key-change"


@pytest.mark.django_db
def test_masked_value_without_stored_secret_is_refused(admin_client, organizer):
    r = save_settings(admin_client, organizer, pretix_sortir_api_token_secret="*****")
    assert b"We could not save your changes" in r.content
