"""The CRM bridge's Celery tasks, where Celery's autodiscovery (``<app>.tasks``) finds them in a worker process."""
from .docuseal_webhooks import process_event  # NOQA: F401
from .mautic_webhooks import withdraw_unsubscribed  # NOQA: F401
from .ninja_webhooks import reconcile_payment  # NOQA: F401
