"""The run: claims the event, syncs the catalogue then the orders page by page, keeps the cursor and the report."""
import logging
import time
from datetime import timedelta
from decimal import Decimal

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
#: more changed orders than this are re-read with the orders listing rather than one request each
REFETCH_ONE_BY_ONE = 20
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
        self.subevents = {}  # remote date id -> SubEvent (event series)
        self.questions = {}  # remote question id -> Question
        self.donation_item = None
        self.warned_quotas = set()
        self._by_label = None
        self._options = {}  # question pk -> {answer text: QuestionOption}
        self._question_items = None  # {(question pk, item pk)} of questions created from answers

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
                self.event.log_action("pretix_helloasso_bridge.sync.failed",
                                      data={"error": r.error, "failures": link.consecutive_failures, "provider": link.provider})
        r.save()
        link.save(update_fields=["last_success", "consecutive_failures", "status", "last_error", "last_error_at"])
        self.link = link

    # -- orders ------------------------------------------------------------------------------------

    def sync_orders(self):
        """
        A first import or a full re-scan reads every order of the form. Afterwards, each sync asks the provider what
        changed since the last complete scan started (minus the safety overlap, so late changes are caught), newest
        first, and stops at a page whose oldest change was applied already and is older than the previous scan's start
        (that scan read from there on; changes since then are all read, even those a webhook applied): a sync with
        nothing new reads one page of each listing, however many orders the overlap holds. New orders found there are read with the orders
        listing from the oldest one's date (pages, bulk inserts); changed known orders are re-fetched one by one,
        or re-read with the listing when there are many.
        """
        link = FormLink.objects.get(pk=self.link.pk)
        started = now()
        seen = set()
        if self.full or link.cursor or not link.scanned_until:
            # a full scan, or the resumption of an interrupted one (the cursor is after its last committed page)
            from_start = self.full or not link.cursor
            seen |= self.scan_orders(link, since=None, cursor=None if self.full else (link.cursor or None))
            if from_start and self.provider.complete_listing:
                self.cancel_deleted_orders(seen)
        if not self.full and link.scanned_until:
            self.apply_recent_changes(link, link.scanned_until - OVERLAP, seen)
        FormLink.objects.filter(pk=link.pk).update(cursor="", scanned_until=started)

    def scan_orders(self, link, *, since, cursor):
        """Read the orders listing (dated from ``since``, or all), one transaction per page; returns the remote ids read."""
        seen = set()
        for page in self.provider.changed_orders(link.form_ref, since=since, cursor=cursor):
            with transaction.atomic():
                # fingerprints of the page's known orders, in one query: unchanged orders (the safety overlap) are skipped
                known = dict(RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, order__isnull=False,
                                                         remote_id__in=[str(r.remote_id) for r in page.orders])
                             .values_list("remote_id", "synced"))
                unchanged = {r.remote_id for r in page.orders if (known.get(str(r.remote_id)) or {}).get("fp") == fingerprint(r)}
                self.report.orders_seen += len(unchanged)
                done = self._create_bulk([r for r in page.orders if r.remote_id not in unchanged])
                for remote in page.orders:
                    if remote.remote_id in unchanged:
                        self._remember_versions(remote.remote_id, known[str(remote.remote_id)], remote)
                    elif remote.remote_id not in done:
                        self.apply(remote)
                    seen.add(remote.remote_id)
                # the cursor advances with the page, in the same transaction
                FormLink.objects.filter(pk=link.pk).update(cursor=page.cursor or "")
                self.report.save()
            self.set_progress(_("{count} orders read").format(count=self.report.orders_seen))
        return seen

    def cancel_deleted_orders(self, seen):
        """After a complete full read (platforms whose listing is complete): imported orders it no longer lists were
        deleted on the platform, so their pretix orders are cancelled (an empty listing cancels nothing: too suspicious)."""
        from pretix.base.models import Order
        from pretix.base.services.orders import cancel_order

        if not seen:
            return
        gone = RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, order__isnull=False).exclude(
            remote_id__in=[str(s) for s in seen]).exclude(order__status=Order.STATUS_CANCELED).select_related("order")
        for ro in gone:
            with transaction.atomic():
                cancel_order(ro.order.pk, send_mail=self.link.send_emails, cancellation_fee=None, try_auto_refund=False)
                ro.order.log_action("pretix_helloasso_bridge.order.deleted_remotely",
                                    data={"remote_order_id": ro.remote_id, "provider": self.provider.identifier})
                RemoteObject.objects.filter(pk=ro.pk).update(synced={**(ro.synced or {}), "fp": "deleted"})
                self.report.orders_cancelled += 1
        self.report.save()

    def with_deleted_positions(self, order, remote):
        """A complete remote order without some imported tickets: those were deleted on the platform, cancel them."""
        import dataclasses

        present = {str(p.remote_id) for p in remote.positions}
        mapped = RemoteObject.objects.filter(event=self.event, kind=RemoteObject.POSITION, order=order,
                                             position__isnull=False).values_list("remote_id", flat=True)
        missing = [m for m in mapped if m not in present]
        if not missing:
            return remote
        return dataclasses.replace(remote, positions=list(remote.positions) + [
            P.RemotePosition(remote_id=m, product_id=None, product_label="", price=Decimal("0.00"), state=P.CANCELED) for m in missing])

    def _remember_versions(self, remote_id, synced, remote):
        """The order's data did not change but its version markers did: remember them, so the change is not listed again."""
        if (synced or {}).get("v") != remote.versions:
            RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, remote_id=str(remote_id)).update(
                synced={**(synced or {}), "v": remote.versions})

    def pending_changes(self, changes):
        """The changes whose version was not applied yet (one query for the page): new orders, changed orders."""
        stored = dict(RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, order__isnull=False,
                                                  remote_id__in={c.order_id for c in changes}).values_list("remote_id", "synced"))
        return [c for c in changes if c.order_id and (c.order_id not in stored or c.version not in (stored[c.order_id] or {}).get("v", ()))]

    def apply_recent_changes(self, link, not_before, seen):
        changes = self.provider.recent_changes(link.form_ref, not_before, link.scanned_until, self.pending_changes)
        if changes is None:  # the provider cannot list changes: re-read the orders dated from then on
            self.scan_orders(link, since=not_before, cursor=None)
            return
        known = set(RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, order__isnull=False,
                                                remote_id__in={c.order_id for c in changes}).values_list("remote_id", flat=True))
        new = [c for c in changes if c.order_id not in known and c.order_id not in seen]
        changed = list(dict.fromkeys(c.order_id for c in changes if c.order_id in known and c.order_id not in seen))
        # new orders are read with the orders listing from the oldest one's date (pages, bulk inserts); a few dated
        # before the window (late ones) are fetched alone rather than re-reading every order since their date
        late = {c.order_id for c in new if not c.order_date or c.order_date < not_before}
        if len(late) > REFETCH_ONE_BY_ONE:
            late = set()
        listed = [c for c in new if c.order_id not in late]
        if len(changed) > REFETCH_ONE_BY_ONE:
            listed += [c for c in changes if c.order_id in changed]
        if listed:
            dates = [c.order_date for c in listed]
            seen |= self.scan_orders(link, since=min(dates) if all(dates) else None, cursor=None)
        for remote_id in changed + list(dict.fromkeys(c.order_id for c in new)):
            if remote_id not in seen:  # changed, late, or listed as new but not in the orders listing (yet): read it alone
                self.apply_one(remote_id)
                seen.add(remote_id)

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
        """Create or update one order (each in a savepoint: one that fails is reported, the others go on)."""
        self.report.orders_seen += 1
        try:
            with transaction.atomic():
                ro = lookup(self.event, RemoteObject.ORDER, remote.remote_id)
                fp = fingerprint(remote)
                if ro and ro.order:
                    if ro.synced.get("fp") == fp:  # same data (re-read in the overlap, or only a newer update date)
                        self._remember_versions(ro.remote_id, ro.synced, remote)
                        return
                    self._update(ro.order, self.with_deleted_positions(ro.order, remote) if self.provider.complete_listing else remote)
                else:
                    self._create(remote)
                    ro = lookup(self.event, RemoteObject.ORDER, remote.remote_id)
                RemoteObject.objects.filter(pk=ro.pk).update(synced={**(ro.synced or {}), "fp": fp, "v": remote.versions})
        except SkipOrder as e:
            self.report.skipped.append({"remote_id": remote.remote_id, "reason": str(e)})
        except Exception as e:  # noqa: B902 - one bad order must not stop the others; it is reported
            logger.exception("%s order %s could not be imported", self.provider.identifier, remote.remote_id)
            self.report.skipped.append({"remote_id": remote.remote_id, "reason": _("error: {error}").format(error=type(e).__name__)})


def run_sync(event, *, trigger="manual", full=False, provider=None, report=None):
    """Run a sync of ``event`` now, inside its organiser's scope. Returns the report."""
    from ..config import provider_for

    with scope(organizer=event.organizer):
        link = FormLink.objects.select_related("event").get(event=event)
        provider = provider or provider_for(event.organizer, link.provider)
        return Sync(link, provider, trigger=trigger, full=full, report=report).run()
