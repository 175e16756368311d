"""
Settings of the real Celery worker that tests/test_celery_worker.py starts (PostgreSQL + redis CI job only).

The worker runs the suite's test settings, but with a broker instead of eager mode, and on the test
database that pytest-django created (its name is handed over in ``TESTS_WORKER_DB_NAME``).
"""
import os

from tests.settings import *  # NOQA

CELERY_BROKER_URL = os.environ["TESTS_WORKER_BROKER"]
CELERY_RESULT_BACKEND = None
CELERY_ALWAYS_EAGER = CELERY_TASK_ALWAYS_EAGER = False
HAS_CELERY = True
DATABASES["default"]["NAME"] = os.environ["TESTS_WORKER_DB_NAME"]  # NOQA: F405
DATABASES["default"].pop("TEST", None)  # NOQA: F405
