"""The run: claims the event, syncs the catalogue then the orders page by page, keeps the cursor and the report."""
import logging
import time
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext as _
from django_scopes import scope

from pretix.base.i18n import language

from pretix_integrations_core.errors import ExternalServiceError

from .. import providers as P
from ..models import FormLink, RemoteObject, SyncReport
from .errors import SkipOrder, SyncAlreadyRunning
from .remote_ids import fingerprint, lookup

logger = logging.getLogger(__name__)
from .bulk_import import BulkOrderImport
from .catalogue import CatalogueMapping
from .matching import PositionMatching
from .order_create import OrderCreation
from .order_update import OrderUpdate
from .payments import PaymentsAndRefunds

OVERLAP = timedelta(minutes=30)
#: a sync that has been "running" longer than this is considered dead and may be taken over
STALE_RUN = timedelta(minutes=30)
#: after this many failed syncs in a row the link's status becomes "error" and the organiser is notified
FAILURES_BEFORE_ERROR = 3


class Sync(CatalogueMapping, PositionMatching, OrderCreation, BulkOrderImport, OrderUpdate, PaymentsAndRefunds):
    def __init__(self, link: FormLink, provider, *, trigger="manual", full=False, report=None):
        self.link = link
        self.event = link.event
        self.provider = provider
        self.report = report
        self.trigger = trigger
        self.full = full
        self.items = {}  # remote product id -> Item
        self.questions = {}  # remote question id -> Question
        self.donation_item = None
        self.warned_quotas = set()
        self._by_label = None
        self._options = {}  # question pk -> {answer text: QuestionOption}

    # -- the run -----------------------------------------------------------------------------------

    def claim(self):
        stale = now() - STALE_RUN
        n = FormLink.objects.filter(pk=self.link.pk).filter(Q(running_since__isnull=True) | Q(running_since__lt=stale)).update(
            running_since=now(), progress=_("Starting"))
        if not n:
            raise SyncAlreadyRunning()

    def release(self):
        FormLink.objects.filter(pk=self.link.pk).update(running_since=None, progress="")

    def set_progress(self, text):
        FormLink.objects.filter(pk=self.link.pk).update(progress=text[:190])

    def run(self):
        """Run one sync; returns the report. Errors are recorded on the report and the link, then re-raised."""
        started = time.monotonic()
        self.claim()
        # a report still "running" belongs to a sync that died (we hold the claim now): say so
        SyncReport.objects.filter(event=self.event, state=SyncReport.RUNNING).exclude(
            pk=getattr(self.report, "pk", None)).update(state=SyncReport.FAILED, finished=now(),
                                                        error=_("Interrupted (the process stopped); the next sync resumed it."))
        if self.report is None:
            self.report = SyncReport.objects.create(event=self.event, trigger=self.trigger, full=self.full)
        elif self.report.state != SyncReport.RUNNING:
            self.report.state = SyncReport.RUNNING
            self.report.save(update_fields=["state"])
        try:
            with language(self.event.settings.locale):
                self.sync_catalog()
                self.sync_orders()
        except Exception as e:
            self.finish(started, error=e)
            raise
        else:
            self.finish(started)
        finally:
            self.release()
        return self.report

    def finish(self, started, error=None):
        r = self.report
        r.finished = now()
        r.duration = round(time.monotonic() - started, 3)
        r.api_calls = self.provider.calls
        link = FormLink.objects.get(pk=self.link.pk)
        if error is None:
            r.state = SyncReport.SUCCESS
            link.last_success = r.finished
            link.consecutive_failures = 0
            if link.status == FormLink.ERROR:
                link.status = FormLink.ACTIVE
        else:
            r.state = SyncReport.FAILED
            r.error = str(error) if isinstance(error, ExternalServiceError) else _("Unexpected error: {error}").format(
                error=type(error).__name__)
            link.last_error, link.last_error_at = r.error, r.finished
            link.consecutive_failures += 1
            if link.consecutive_failures >= FAILURES_BEFORE_ERROR and link.status != FormLink.ERROR:
                link.status = FormLink.ERROR
                self.event.log_action("pretix_helloasso_bridge.sync.failed", data={"error": r.error, "failures": link.consecutive_failures})
        r.save()
        link.save(update_fields=["last_success", "consecutive_failures", "status", "last_error", "last_error_at"])
        self.link = link

    # -- orders ------------------------------------------------------------------------------------

    def sync_orders(self):
        link = FormLink.objects.get(pk=self.link.pk)
        cursor = link.cursor or None
        since = None if (self.full or cursor or not link.scanned_until) else link.scanned_until - OVERLAP
        seen, newest = set(), link.scanned_until
        for n, page in enumerate(self.provider.changed_orders(link.form_ref, since=since, cursor=cursor), start=1):
            with transaction.atomic():
                # fingerprints of the page's known orders, in one query: unchanged orders (the safety overlap) are skipped
                known = dict(RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, order__isnull=False,
                                                         remote_id__in=[str(r.remote_id) for r in page.orders])
                             .values_list("remote_id", "synced"))
                unchanged = {r.remote_id for r in page.orders if (known.get(str(r.remote_id)) or {}).get("fp") == fingerprint(r)}
                self.report.orders_seen += len(unchanged)
                done = self._create_bulk([r for r in page.orders if r.remote_id not in unchanged])
                for remote in page.orders:
                    if remote.remote_id not in done and remote.remote_id not in unchanged:
                        self.apply(remote)
                    seen.add(remote.remote_id)
                    if remote.date and (newest is None or remote.date > newest):
                        newest = remote.date
                # the cursor advances with the page, in the same transaction
                FormLink.objects.filter(pk=link.pk).update(cursor=page.cursor or "", scanned_until=newest)
                self.report.save()
            self.set_progress(_("{count} orders read").format(count=self.report.orders_seen))
        if since is not None and hasattr(self.provider, "updated_order_ids"):
            # refunds, chargebacks and installments of older orders change the payments, not the order date
            updates_since = link.last_success - OVERLAP if link.last_success else since
            for remote_id in self.provider.updated_order_ids(link.form_ref, updates_since):
                if remote_id not in seen and lookup(self.event, RemoteObject.ORDER, remote_id):
                    self.apply_one(remote_id)
        FormLink.objects.filter(pk=link.pk).update(cursor="", scanned_until=newest)

    def apply_one(self, remote_id):
        """Re-fetch one order from the API (webhooks) and import it."""
        remote = self.provider.fetch_order(remote_id)
        if remote.form_ref.lower() != self.link.form_ref.lower():
            self.report.skipped.append({"remote_id": str(remote_id), "reason": _("belongs to another form")})
            return
        with transaction.atomic():
            self.apply(remote)
            self.report.save()

    def apply(self, remote: P.RemoteOrder):
        self.report.orders_seen += 1
        try:
            with transaction.atomic():
                ro = lookup(self.event, RemoteObject.ORDER, remote.remote_id)
                fp = fingerprint(remote)
                if ro and ro.order:
                    # orders re-read in the safety overlap are mostly unchanged: skip the update path for them
                    if ro.synced.get("fp") == fp:
                        return
                    self._update(ro.order, remote)
                else:
                    self._create(remote)
                    ro = lookup(self.event, RemoteObject.ORDER, remote.remote_id)
                RemoteObject.objects.filter(pk=ro.pk).update(synced={**(ro.synced or {}), "fp": fp})
        except SkipOrder as e:
            self.report.skipped.append({"remote_id": remote.remote_id, "reason": str(e)})
        except Exception as e:  # noqa: B902 - one bad order must not stop the others; it is reported
            logger.exception("HelloAsso order %s could not be imported", remote.remote_id)
            self.report.skipped.append({"remote_id": remote.remote_id, "reason": _("error: {error}").format(error=type(e).__name__)})


def run_sync(event, *, trigger="manual", full=False, provider=None, report=None):
    """Run a sync of ``event`` now, inside its organiser's scope. Returns the report."""
    from ..config import provider_for

    with scope(organizer=event.organizer):
        link = FormLink.objects.select_related("event").get(event=event)
        provider = provider or provider_for(event.organizer)
        return Sync(link, provider, trigger=trigger, full=full, report=report).run()
