"""
Django settings of the local demo: pretix's own settings (read from ``demo-data/pretix.cfg``), plus:

- a real cache. Without redis or memcached pretix falls back to a dummy cache, which would switch off the suite's
  circuit breaker, negative cache and rate limits. The demo uses a file cache instead, shared by the web server and
  ``runperiodic``;
- an in-memory celery broker. Without ``[celery]`` pretix runs its tasks at once (eager mode), but celery still
  opens a producer on the default broker URL (amqp without a host) for every ``apply_async``: kombu then logs
  "No hostname was supplied" at each ``runperiodic``. The tasks stay eager, the broker is only named;
- a log filter for pretix's "unexpected origin" warning at login when the origins differ only by the port: pretix
  compares the browser's origin (``http://127.0.0.1:8000``) with its configured URL *without* its port
  (``http://127.0.0.1``), so a pretix on any other port than 80/443 warns at every login. Other origins still warn.
"""
import logging
import os
from urllib.parse import urlsplit

from pretix.settings import *  # NOQA
from pretix.settings import DATA_DIR, HAS_CELERY, LOGGING, REAL_CACHE_USED, SITE_URL

if not REAL_CACHE_USED:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.path.join(DATA_DIR, "cache", "django"),
        }
    }

if not HAS_CELERY:
    CELERY_BROKER_URL = "memory://localhost/"


class SameOriginOtherPortFilter(logging.Filter):
    """Drops pretix's "unexpected origin" warnings whose origin is the configured URL, port included."""

    PREFIXES = ("Received login form submission with unexpected origin value.", "Received report of unexpected origin value.")

    def __init__(self, site_url=SITE_URL):
        super().__init__()
        parts = urlsplit(site_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"

    def filter(self, record):
        msg = record.getMessage()
        if not msg.startswith(self.PREFIXES):
            return True
        sent = msg.split("Origin sent from JavaScript: ", 1)[-1].split(" / ", 1)[0]
        return sent != self.origin


LOGGING["filters"]["demo_same_origin_other_port"] = {"()": SameOriginOtherPortFilter}
LOGGING["loggers"]["pretix.control.views.auth"] = {"filters": ["demo_same_origin_other_port"]}
