"""
Test settings of the suite, on top of pretix's own test settings.

pretix.testutils.settings swaps the cache for a dummy and turns redis off. The suite needs a real cache
(circuit breaker, negative cache, rate limits), so this module puts one back: local memory by default,
redis when ``PRETIX_REDIS_LOCATION`` is set (as .ci/run does for its PostgreSQL + redis run).
The database comes from pretix's usual configuration: SQLite by default, PostgreSQL when the
``PRETIX_DATABASE_*`` variables say so.
"""
import os

from cryptography.fernet import Fernet

# A stray /etc/pretix/pretix.cfg or ./pretix.cfg must never point the tests at a real database.
os.environ.setdefault("PRETIX_CONFIG_FILE", "/dev/null")
# Keys for the tests only; production keys come from pretix.cfg or the environment.
os.environ.setdefault("PRETIX_INTEGRATIONS_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("PRETIX_INTEGRATIONS_HASH_KEY", "tests-hash-key")

from pretix.testutils.settings import *  # NOQA

# Fake external services listen on 127.0.0.1: allow it in tests only (production keeps pretix's guard).
ALLOW_HTTP_TO_PRIVATE_NETWORKS = True

if os.environ.get("TESTS_FILE_CACHE_DIR"):  # used by tests that start a second process sharing the cache
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                          "LOCATION": os.environ["TESTS_FILE_CACHE_DIR"]}}
elif "redis" in ORIGINAL_CACHES:  # NOQA: F405
    CACHES = {"default": dict(ORIGINAL_CACHES["redis"])}  # NOQA: F405
    CACHES["default"]["KEY_PREFIX"] = "pretix-fr-integrations-tests"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
