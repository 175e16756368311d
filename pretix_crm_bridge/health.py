"""Per-system health of an organiser's CRM connections: connected, last success, last error, jobs waiting and failed."""
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from django.db.models import Max
from django.utils.translation import gettext_lazy as _
from django_scopes import scopes_disabled

from pretix.base.models import LogEntry
from pretix.base.models.datasync import OrderSyncQueue, OrderSyncResult

from . import config
from .sync import PROVIDERS
from .triggers import DOCUSEAL, INVOICENINJA, MAUTIC, SYSTEM_ENABLED, SYSTEM_NAMES

CONFIGURED = {MAUTIC: config.mautic_configured, INVOICENINJA: config.invoiceninja_configured, DOCUSEAL: config.docuseal_configured}


@dataclass
class SystemHealth:
    system: str
    name: str
    connected: bool
    last_success: Optional[datetime]
    last_error: str
    last_error_at: Optional[datetime]
    waiting: int
    failed: int
    extra: tuple = ()


def organizer_health(organizer):
    rows = []
    with scopes_disabled():
        for system, provider in PROVIDERS.items():
            queue = OrderSyncQueue.objects.filter(event__organizer=organizer, sync_provider=provider.identifier)
            last_success = OrderSyncResult.objects.filter(
                order__event__organizer=organizer, sync_provider=provider.identifier).aggregate(m=Max("transmitted"))["m"]
            last_error, last_error_at = "", None
            failures = LogEntry.objects.filter(organizer=organizer, action_type__startswith="pretix.event.order.data_sync.failed.")
            for entry in failures.order_by("-datetime")[:50]:
                data = entry.parsed_data or {}
                if data.get("provider") == provider.identifier:
                    last_error = "; ".join(str(m) for m in data.get("error") or []) or str(data.get("full_message") or "")
                    last_error_at = entry.datetime
                    break
            rows.append(SystemHealth(
                system=system, name=SYSTEM_NAMES[system], connected=CONFIGURED[system](organizer), last_success=last_success,
                last_error=last_error, last_error_at=last_error_at,
                waiting=queue.filter(need_manual_retry__isnull=True).count(),
                failed=queue.filter(need_manual_retry__isnull=False).count(),
                extra=tuple(signature_counts(order__event__organizer=organizer)) if system == DOCUSEAL else (),
            ))
    return rows


def event_counts(event):
    """Counts for the event dashboard widget: what was synced per system, what waits, what failed."""
    from .sync import InvoiceNinjaSync, MauticSync
    with scopes_disabled():
        results = OrderSyncResult.objects.filter(order__event=event)
        queue = OrderSyncQueue.objects.filter(event=event)
        counts = []
        for system, provider in PROVIDERS.items():
            if not event.settings.get(SYSTEM_ENABLED[system], as_type=bool):
                continue
            mine = results.filter(sync_provider=provider.identifier)
            if system == DOCUSEAL:
                synced = signature_counts(order__event=event)
            elif provider is MauticSync:
                synced = [(_contacts, mine.filter(mapping_id=1).values("id_value").distinct().count())]
            else:
                synced = [(_clients, mine.filter(mapping_id=InvoiceNinjaSync.MAPPING_CLIENT).values("id_value").distinct().count()),
                          (_invoices, mine.filter(mapping_id=InvoiceNinjaSync.MAPPING_INVOICE).count())]
            q = queue.filter(sync_provider=provider.identifier)
            counts.append({"name": SYSTEM_NAMES[system], "synced": [(str(label), n) for label, n in synced],
                           "waiting": q.filter(need_manual_retry__isnull=True).count(),
                           "failed": q.filter(need_manual_retry__isnull=False).count()})
    return counts


def signature_counts(**filters):
    """[(label, n)] of signature requests waiting for the signer and signed."""
    from .models import SignatureRequest
    qs = SignatureRequest.objects.filter(**filters)
    return [(str(_signatures_pending), qs.filter(status__in=SignatureRequest.OPEN).count()),
            (str(_signatures_completed), qs.filter(status=SignatureRequest.COMPLETED).count())]


_contacts = _("contacts")
_signatures_pending = _("signatures pending")
_signatures_completed = _("signed")
_clients = _("clients")
_invoices = _("invoices")
