"""
Secrets at rest: authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) of tokens and client secrets.

The keys never live in the database. They come from pretix's configuration file::

    [integrations]
    encryption_keys = <newest key>,<older key>,...

or from the environment variable ``PRETIX_INTEGRATIONS_ENCRYPTION_KEYS`` (pretix maps every
``[section] key`` to ``PRETIX_<SECTION>_<KEY>``). The first key encrypts, every key decrypts, so a
key is rotated by putting a new one in front and re-saving the secrets (``rotate()`` re-encrypts a
stored value with the first key). Generate a key with ``python -m pretix_integrations_core.keygen``.

Stored values carry a prefix so that they can never be confused with clear text. A value that no
configured key can decrypt raises :class:`SecretUndecryptable`; it never silently turns into "".
"""
import base64
import functools
import hashlib
import hmac
import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

CONFIG_SECTION = "integrations"
PREFIX = "enc1:"

_lock = threading.Lock()
_fernet_cache = {}


class SecretError(Exception):
    """Base class; ``str(exc)`` is safe to show to organisers and never contains the secret."""


class SecretKeyMissing(SecretError, ImproperlyConfigured):
    def __init__(self):
        super().__init__(_(
            "No encryption key is configured for stored secrets. The administrator must set "
            "[integrations] encryption_keys in pretix.cfg (or PRETIX_INTEGRATIONS_ENCRYPTION_KEYS)."
        ))


class SecretKeyInvalid(SecretError, ImproperlyConfigured):
    def __init__(self, position):
        super().__init__(_(
            "The encryption key number {position} in [integrations] encryption_keys is not a valid key "
            "(32 url-safe base64-encoded bytes)."
        ).format(position=position))


class SecretUndecryptable(SecretError):
    def __init__(self):
        super().__init__(_("The encryption key changed: enter the secret again."))


def _config_value(option):
    cfg = getattr(settings, "CONFIG_FILE", None)
    if cfg is None:  # pragma: no cover - pretix always provides it
        return ""
    return cfg.get(CONFIG_SECTION, option, fallback="") or ""


def _fernet() -> MultiFernet:
    raw = _config_value("encryption_keys")
    keys = [k.strip() for k in raw.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise SecretKeyMissing()
    cache_key = tuple(keys)
    f = _fernet_cache.get(cache_key)
    if f is None:
        fernets = []
        for i, k in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(k.encode()))
            except (ValueError, TypeError):
                raise SecretKeyInvalid(i) from None
        f = MultiFernet(fernets)
        with _lock:
            _fernet_cache.clear()
            _fernet_cache[cache_key] = f
    return f


def encrypt(plaintext: str) -> str:
    if plaintext is None or plaintext == "":
        raise ValueError("refusing to encrypt an empty secret")
    return PREFIX + _fernet().encrypt(plaintext.encode()).decode()


def is_encrypted(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def decrypt(stored: str) -> str:
    if not is_encrypted(stored):
        # A value that was never encrypted (or was tampered with) is not accepted as a secret.
        raise SecretUndecryptable()
    try:
        return _fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable() from None


def rotate(stored: str) -> str:
    """Re-encrypt a stored value with the current first key."""
    if not is_encrypted(stored):
        raise SecretUndecryptable()
    try:
        return PREFIX + _fernet().rotate(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretUndecryptable() from None


def get_secret(settings_store, key: str):
    """
    Read and decrypt an encrypted hierarkey setting. Returns None when nothing is stored.

    Raises SecretUndecryptable when the configured keys cannot decrypt it.
    """
    stored = settings_store.get(key, as_type=str, default=None)
    if not stored:
        return None
    return decrypt(stored)


def set_secret(settings_store, key: str, plaintext):
    if plaintext:
        settings_store.set(key, encrypt(plaintext))
    else:
        del settings_store[key]


def generate_key() -> str:
    return Fernet.generate_key().decode()


@functools.lru_cache(maxsize=16)
def _digest_key(raw: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"pretix-fr-integrations", info=purpose.encode()).derive(raw.encode())


def keyed_digest(value: str, purpose: str) -> str:
    """
    Keyed HMAC-SHA256 of a low-entropy identifier (e.g. a card number), for lookups without storing it.

    The key is ``[integrations] hash_key`` when configured, else derived with HKDF from Django's
    SECRET_KEY (which pretix keeps in its configuration or in DATA_DIR/.secret, never in the database).
    It is deliberately independent from the encryption keys so that rotating those does not change
    digests. ``purpose`` separates the digests of different uses.
    """
    key = _digest_key(_config_value("hash_key") or settings.SECRET_KEY, purpose)
    return base64.urlsafe_b64encode(hmac.new(key, value.encode(), hashlib.sha256).digest()).decode().rstrip("=")
