"""
Django settings of the local demo: pretix's own settings (read from ``demo-data/pretix.cfg``), plus a real cache.

Without redis or memcached pretix falls back to a dummy cache, which would switch off the suite's circuit breaker,
negative cache and rate limits. The demo uses a file cache instead, shared by the web server and ``runperiodic``.
"""
import os

from pretix.settings import *  # NOQA
from pretix.settings import DATA_DIR, REAL_CACHE_USED

if not REAL_CACHE_USED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.path.join(DATA_DIR, "cache", "django"),
        }
    }
