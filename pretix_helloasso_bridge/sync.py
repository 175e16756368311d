"""
The sync engine: makes a pretix event the copy of one remote form, through the neutral models of :mod:`.providers`.

- the catalogue first: products (not sold in the shop: they only belong to the "HelloAsso" sales channel),
  add-ons, questions, a "Donation" product; every pretix object is remembered in :class:`RemoteObject`, so a
  second sync updates it, and what the organiser changed in pretix is reported, never overwritten silently;
- then orders, one page at a time. Each page is one transaction. The page's new orders (no cancelled item, refund or
  chargeback yet) are created together with bulk inserts, then pretix's ``order_placed`` / ``order_paid`` signals are
  sent per order; everything else (updates, and any order the bulk path cannot take) goes one order at a time, each
  in a savepoint (an order that cannot be imported is skipped with its reason and the others go on). The cursor is
  saved with the page: a sync that dies is resumed by the next run, and since every write is keyed on remote ids
  nothing is imported twice;
- quotas count the imported tickets, but an import is never refused for quota (``force``): the report says so;
- one sync per event at a time, across workers (a conditional UPDATE on the link claims it).
"""
import hashlib
import json
import logging
import time
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.db import transaction
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext as _
from django_scopes import scope

from pretix.base.i18n import language
from pretix.base.models import Item, ItemCategory, Order, OrderPayment, OrderPosition, OrderRefund, Question, QuestionOption, Quota, SalesChannel, TaxRule
from pretix.base.services.orders import OrderChangeManager, cancel_order
from pretix.base.signals import order_paid, order_placed

from pretix_integrations_core.errors import ExternalServiceError

from . import providers as P
from .models import FormLink, RemoteObject, SyncReport

logger = logging.getLogger(__name__)

CHANNEL = "helloasso"
OVERLAP = timedelta(minutes=30)
#: a sync that has been "running" longer than this is considered dead and may be taken over
STALE_RUN = timedelta(minutes=30)
#: after this many failed syncs in a row the link's status becomes "error" and the organiser is notified
FAILURES_BEFORE_ERROR = 3


class SyncAlreadyRunning(Exception):
    pass


def sales_channel(organizer):
    ch = organizer.sales_channels.filter(identifier=CHANNEL).first()
    if ch is None:
        ch = SalesChannel.objects.create(organizer=organizer, identifier=CHANNEL, type="api", label={"en": "HelloAsso", "fr": "HelloAsso"},
                                         position=99)
    return ch


def _remote(event, kind, remote_id):
    return RemoteObject.objects.filter(event=event, kind=kind, remote_id=str(remote_id)).first()


def fingerprint(remote: P.RemoteOrder) -> str:
    """A digest of everything the sync reads from a HelloAsso order: equal digests mean nothing to apply again."""
    return hashlib.sha256(repr(remote).encode()).hexdigest()[:40]


def _remember(event, kind, remote_id, **kwargs):
    obj, _created = RemoteObject.objects.update_or_create(event=event, kind=kind, remote_id=str(remote_id), defaults=kwargs)
    return obj


class Sync:
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

    # -- catalogue ---------------------------------------------------------------------------------

    def sync_catalog(self):
        self.set_progress(_("Reading the form"))
        catalog = self.provider.get_catalog(self.link.form_ref)
        with transaction.atomic():
            if catalog.form.title and (catalog.form.title != self.link.form_title or catalog.form.url != self.link.form_url):
                FormLink.objects.filter(pk=self.link.pk).update(form_title=catalog.form.title[:500], form_url=catalog.form.url[:500])
            channel = sales_channel(self.event.organizer)
            for q in catalog.questions:
                self.questions[q.remote_id] = self._question(q)
            category = None
            for p in catalog.products:
                if p.is_addon and category is None:
                    category = self._addon_category()
                self.items[p.remote_id] = self._product(p, channel, category if p.is_addon else None)
            for p in catalog.products:
                item = self.items[p.remote_id]
                for qid in p.questions:
                    if qid in self.questions:
                        self.questions[qid].items.add(item)
                if p.is_addon:
                    for parent_id in p.parents:
                        parent = self.items.get(parent_id)
                        if parent and not parent.addons.filter(addon_category=category).exists():
                            parent.addons.create(addon_category=category, min_count=0, max_count=10)
            self.report.save()

    def _addon_category(self):
        ro = _remote(self.event, RemoteObject.PRODUCT, "category-addons")
        cat = ItemCategory.objects.filter(pk=ro.synced.get("category")).first() if ro else None
        if cat is None:
            cat = ItemCategory.objects.create(event=self.event, name=_("HelloAsso options"), is_addon=True)
            _remember(self.event, RemoteObject.PRODUCT, "category-addons", synced={"category": cat.pk})
        return cat

    def _tax_rule(self, rate):
        if not rate:
            return None
        rule = self.event.tax_rules.filter(rate=rate).first()
        return rule or TaxRule.objects.create(event=self.event, rate=rate, name=_("VAT {rate} %").format(rate=rate))

    def _quota(self):
        ro = _remote(self.event, RemoteObject.PRODUCT, "quota")
        q = Quota.objects.filter(event=self.event, pk=ro.synced.get("quota")).first() if ro else None
        if q is None:
            q = Quota.objects.create(event=self.event, name=_("HelloAsso"), size=None)
            _remember(self.event, RemoteObject.PRODUCT, "quota", synced={"quota": q.pk})
        return q

    def _product(self, p, channel, category):
        # pay-what-you-want rates: pretix's free price starts at the product price, so that is HelloAsso's minimum
        price = p.min_price if p.free_price and p.min_price is not None else p.price
        wanted = {"name": p.name, "price": str(price), "description": p.description}
        ro = _remote(self.event, RemoteObject.PRODUCT, p.remote_id)
        item = ro.item if ro else None
        if item is None:
            item = Item.objects.create(
                event=self.event, name=p.name, description=p.description or None, default_price=price,
                free_price=p.free_price or p.is_donation, tax_rule=self._tax_rule(p.tax_rate), category=category,
                admission=not p.is_addon and not p.is_donation, all_sales_channels=False, max_per_order=p.max_per_order,
                position=len(self.items),
            )
            item.limit_sales_channels.add(channel)
            self._quota().items.add(item)
            _remember(self.event, RemoteObject.PRODUCT, p.remote_id, item=item, synced=wanted)
            return item
        # update what the organiser did not change in pretix; report what differs
        last = ro.synced or {}
        current = {"name": str(item.name), "price": str(item.default_price), "description": str(item.description or "")}
        changed = []
        for key, value in wanted.items():
            if value == current[key]:
                continue
            if current[key] == last.get(key):
                changed.append(key)
                if key == "name":
                    item.name = value
                elif key == "price":
                    item.default_price = Decimal(value)
                else:
                    item.description = value
            elif value != last.get(key):
                self.report.warnings.append(_("Product “{name}”: changed in pretix and on HelloAsso ({field}); pretix's value was kept.").format(
                    name=item.name, field=key))
        if changed:
            item.save()
            ro.synced = {**last, **{k: wanted[k] for k in changed}}
            ro.save(update_fields=["synced", "updated"])
        return item

    def _question(self, q):
        ro = _remote(self.event, RemoteObject.QUESTION, q.remote_id)
        question = ro.question if ro else None
        if question is None:
            question = Question.objects.create(event=self.event, question=q.label, type=q.type, required=q.required,
                                               position=len(self.questions) + 100)
            for i, opt in enumerate(q.options):
                QuestionOption.objects.create(question=question, answer=opt, identifier=f"HA{q.remote_id}-{i}", position=i)
            _remember(self.event, RemoteObject.QUESTION, q.remote_id, question=question, synced={"label": q.label})
        else:
            existing = {str(o.answer) for o in question.options.all()}
            for i, opt in enumerate(q.options):
                if opt not in existing:
                    QuestionOption.objects.create(question=question, answer=opt, position=100 + i)
        return question

    def _donation_item(self):
        if self.donation_item is None:
            ro = _remote(self.event, RemoteObject.PRODUCT, "donation")
            self.donation_item = ro.item if ro and ro.item else None
            if self.donation_item is None:
                self.donation_item = Item.objects.create(event=self.event, name=_("Donation"), default_price=Decimal("0.00"), free_price=True,
                                                         admission=False, all_sales_channels=False)
                self.donation_item.limit_sales_channels.add(sales_channel(self.event.organizer))
                self._quota().items.add(self.donation_item)
                _remember(self.event, RemoteObject.PRODUCT, "donation", item=self.donation_item)
        return self.donation_item

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
                if remote_id not in seen and _remote(self.event, RemoteObject.ORDER, remote_id):
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
                ro = _remote(self.event, RemoteObject.ORDER, remote.remote_id)
                fp = fingerprint(remote)
                if ro and ro.order:
                    # orders re-read in the safety overlap are mostly unchanged: skip the update path for them
                    if ro.synced.get("fp") == fp:
                        return
                    self._update(ro.order, remote)
                else:
                    self._create(remote)
                    ro = _remote(self.event, RemoteObject.ORDER, remote.remote_id)
                RemoteObject.objects.filter(pk=ro.pk).update(synced={**(ro.synced or {}), "fp": fp})
        except SkipOrder as e:
            self.report.skipped.append({"remote_id": remote.remote_id, "reason": str(e)})
        except Exception as e:  # noqa: B902 - one bad order must not stop the others; it is reported
            logger.exception("HelloAsso order %s could not be imported", remote.remote_id)
            self.report.skipped.append({"remote_id": remote.remote_id, "reason": _("error: {error}").format(error=type(e).__name__)})

    # order creation

    def _item_for(self, pos: P.RemotePosition):
        if pos.is_donation and (not pos.product_id or pos.product_id not in self.items):
            return self._donation_item()
        if pos.product_id and pos.product_id in self.items:
            return self.items[pos.product_id]
        if pos.product_id:
            ro = _remote(self.event, RemoteObject.PRODUCT, pos.product_id)
            if ro and ro.item:
                return ro.item
        for item in self.items.values():  # no rate id (old data): match by label
            if pos.product_label and str(item.name) == pos.product_label:
                return item
        raise SkipOrder(_("item “{label}” matches no product").format(label=pos.product_label or pos.remote_id))

    def _answers(self, pos: P.RemotePosition, item):
        result = []
        if self._by_label is None or len(self._by_label) != len(self.questions):
            self._by_label = {str(q.question): q for q in self.questions.values()}
        by_label = self._by_label
        for ans in pos.answers:
            question = self.questions.get(ans.question_id) if ans.question_id else None
            if question is None and ans.question_id:
                ro = _remote(self.event, RemoteObject.QUESTION, ans.question_id)
                question = ro.question if ro else None
            question = question or by_label.get(ans.label)
            if question is None:
                continue
            value = ans.answer
            entry = {"question": question.pk, "answer": value, "options": []}
            if question.type == Question.TYPE_CHOICE:
                if question.pk not in self._options:  # read once per sync, not once per answer
                    self._options[question.pk] = {}
                    for o in question.options.all():
                        self._options[question.pk].setdefault(str(o.answer), o)
                opt = self._options[question.pk].get(value)
                if opt is None:
                    continue
                entry["options"] = [opt.pk]
            elif question.type == Question.TYPE_BOOLEAN:
                entry["answer"] = "True" if value.strip().lower() in ("oui", "yes", "true", "1") else "False"
            elif question.type == Question.TYPE_NUMBER:
                try:
                    entry["answer"] = str(Decimal(value.replace(",", ".")))
                except ArithmeticError:
                    continue
            elif question.type == Question.TYPE_DATE:
                from django.utils.dateparse import parse_date as pd

                from .providers.helloasso import parse_date
                d = parse_date(value) if "T" in value else None
                d = d.date() if d else pd(value) if len(value) == 10 else None
                if not d:
                    import datetime
                    try:
                        d = datetime.datetime.strptime(value, "%d/%m/%Y").date()
                    except ValueError:
                        continue
                entry["answer"] = d.isoformat()
            result.append(entry)
        return result

    def _create(self, remote: P.RemoteOrder):
        from pretix.api.serializers.order import OrderCreateSerializer

        live = [p for p in remote.positions if p.state != P.CANCELED]
        cancel_after = not live
        if cancel_after:
            # cancelled or refunded before the first import: imported, then cancelled, so the refund is on record
            live = list(remote.positions)
        if not live:
            raise SkipOrder(_("the order has no items"))
        if not remote.email:
            raise SkipOrder(_("no payer email"))
        positions, posid = [], {}
        for i, pos in enumerate(live, start=1):  # add-ons come right after their parent, as pretix requires
            item = self._item_for(pos)
            posid[pos.remote_id] = i
            data = {"positionid": i, "item": item.pk, "price": str(pos.price), "answers": self._answers(pos, item)}
            if pos.addon_to:
                if pos.addon_to not in posid:
                    raise SkipOrder(_("an option belongs to a cancelled item"))
                data["addon_to"] = posid[pos.addon_to]
            if pos.attendee_first_name or pos.attendee_last_name:
                data["attendee_name_parts"] = {"_scheme": "given_family", "given_name": pos.attendee_first_name,
                                               "family_name": pos.attendee_last_name}
            if pos.secret and not pos.addon_to and not OrderPosition.all.filter(order__event=self.event, secret=pos.secret).exists():
                data["secret"] = pos.secret
            positions.append(data)
        promo = sorted({p.promo_code for p in remote.positions if p.promo_code})
        discount = sum((p.discount for p in remote.positions), Decimal("0.00"))
        comment = ""
        if promo:
            comment = _("HelloAsso promo code: {codes} (discount {amount} {currency})").format(
                codes=", ".join(promo), amount=discount, currency=self.event.currency)
        address = None
        if remote.street or remote.city or remote.company or remote.country:
            address = {"is_business": bool(remote.company), "company": remote.company, "street": remote.street, "zipcode": remote.zipcode,
                       "city": remote.city, "country": remote.country or "",
                       "name_parts": {"_scheme": "given_family", "given_name": remote.first_name, "family_name": remote.last_name}}
        payload = {
            "email": remote.email, "locale": self.event.settings.locale, "sales_channel": CHANNEL, "status": "n", "force": True,
            "send_email": False, "valid_if_pending": True, "positions": positions, "comment": comment,
            "api_meta": {"helloasso_order_id": remote.remote_id, "helloasso_promo_codes": promo, "helloasso_discount": str(discount)},
        }
        if address:
            payload["invoice_address"] = address
        ser = OrderCreateSerializer(data=payload, context={"event": self.event, "auth": None, "pdf_data": False,
                                                           "request": SimpleNamespace(event=self.event, user=None)})
        if not ser.is_valid():
            raise SkipOrder(_("pretix refused the order: {errors}").format(errors=json.dumps(ser.errors, default=str)[:300]))
        ser.save()
        order = ser.instance
        changes = {}
        if remote.date:
            changes["datetime"] = remote.date
        changes["expires"] = max(now(), self.event.date_to or self.event.date_from) + timedelta(days=365)
        Order.objects.filter(pk=order.pk).update(**changes)
        order.refresh_from_db()
        _remember(self.event, RemoteObject.ORDER, remote.remote_id, order=order)
        by_posid = {p.positionid: p for p in order.all_positions.all()}
        for pos in live:
            _remember(self.event, RemoteObject.POSITION, pos.remote_id, order=order, position=by_posid[posid[pos.remote_id]])
        order.log_action("pretix.event.order.placed", data={"source": "helloasso", "helloasso_order_id": remote.remote_id})
        order_placed.send(self.event, order=order, bulk=True)
        self.report.orders_created += 1
        self._payments(order, remote, new=True)
        if cancel_after:
            self._update(order, remote, counted=True)
        elif self.link.send_emails:
            self._send_confirmation(order)
        self._quota_warnings(order)

    # bulk creation of new orders (the common case of a first import): one transaction, a few queries per page

    def _fast_candidate(self, remote: P.RemoteOrder) -> bool:
        """New orders that need nothing but creation: no cancelled item, refund, chargeback or free order with payments."""
        if not remote.email or not remote.positions:
            return False
        if any(p.state == P.CANCELED for p in remote.positions):
            return False
        for rp in remote.payments:
            if rp.state == P.CONTESTED or any(rf.done for rf in rp.refunds):
                return False
        return True

    def _unique_strings(self, n, make, taken_query):
        """``n`` new strings from ``make()`` that are neither in the database (``taken_query(candidates)``) nor repeated."""
        result = []
        while len(result) < n:
            candidates = {make() for _i in range(n - len(result))} - set(result)
            taken = set(taken_query(candidates))
            result += [c for c in candidates if c not in taken]
        return result

    def _create_bulk(self, remotes):
        """Create the page's new orders with bulk inserts; returns the remote ids handled (the others take the usual path).

        Same data as :meth:`_create` (which goes through pretix's OrderCreateSerializer one order at a time): orders,
        positions with secrets, answers, invoice addresses, confirmed payments, transactions, log entries, the mapping
        rows, then pretix's ``order_placed`` / ``order_paid`` signals and the optional emails, per order.
        """
        from django.db import connection
        from django.utils.crypto import get_random_string

        from pretix.base.models import InvoiceAddress, LogEntry, QuestionAnswer, Transaction
        from pretix.base.secrets import assign_ticket_secret

        if not remotes or not connection.features.can_return_rows_from_bulk_insert:
            return set()
        ids = {r.remote_id for r in remotes}
        known = set(RemoteObject.objects.filter(event=self.event, kind=RemoteObject.ORDER, remote_id__in=ids, order__isnull=False)
                    .values_list("remote_id", flat=True))
        todo, seen = [], set()
        for r in remotes:
            if r.remote_id in known or r.remote_id in seen or not self._fast_candidate(r):
                continue
            seen.add(r.remote_id)
            todo.append(r)
        if not todo:
            return set()
        try:
            with transaction.atomic():
                built = self._build_orders(todo, InvoiceAddress, QuestionAnswer)
                if not built:
                    return set()
                self._insert_orders(built, InvoiceAddress, QuestionAnswer, LogEntry, Transaction, get_random_string,
                                    assign_ticket_secret)
        except Exception as e:  # noqa: B902 - the usual path imports them one by one and reports what fails
            if not isinstance(e, SkipOrder):
                logger.exception("bulk import of a page failed; importing its orders one by one")
            self.donation_item = None  # it may have been created in the rolled back transaction
            return set()
        for b in built:
            order = b["order"]
            try:
                with transaction.atomic():
                    order_placed.send(self.event, order=order, bulk=True)
                    if order.status == Order.STATUS_PAID:
                        order_paid.send(self.event, order=order)
            except Exception as e:  # noqa: B902 - the order is imported; a failing receiver is reported, it does not stop the page
                logger.exception("a receiver of order_placed/order_paid failed for the imported order %s", order.code)
                self.report.warnings.append(_("Order {code}: a plugin failed while processing the new order ({error}).").format(
                    code=order.code, error=type(e).__name__))
            if self.link.send_emails:
                self._send_confirmation(order)
        self._page_quota_warnings({op.item_id for b in built for op in b["positions"]})
        self.report.orders_seen += len(built)
        self.report.orders_created += len(built)
        return {b["remote"].remote_id for b in built}

    def _build_orders(self, todo, InvoiceAddress, QuestionAnswer):
        channel = sales_channel(self.event.organizer)
        locale = self.event.settings.locale
        expires = max(now(), self.event.date_to or self.event.date_from) + timedelta(days=365)
        built = []
        for remote in todo:
            try:
                positions, posid, answers = [], {}, []
                order = Order(event=self.event, organizer_id=self.event.organizer_id, email=remote.email, locale=locale, sales_channel=channel, testmode=False,
                              datetime=remote.date or now(), expires=expires, valid_if_pending=True, meta_info="{}")
                for i, pos in enumerate(remote.positions, start=1):
                    item = self._item_for(pos)
                    op = OrderPosition(order=order, positionid=i, item=item, price=pos.price, organizer_id=self.event.organizer_id)
                    posid[pos.remote_id] = op
                    if pos.addon_to:
                        if pos.addon_to not in posid:
                            raise SkipOrder("addon")
                        op.addon_to = posid[pos.addon_to]
                    op.attendee_name_parts = ({"_scheme": "given_family", "given_name": pos.attendee_first_name,
                                               "family_name": pos.attendee_last_name}
                                              if pos.attendee_first_name or pos.attendee_last_name else {})
                    op.attendee_name_cached = op.attendee_name
                    op._ha_secret = pos.secret if pos.secret and not pos.addon_to else ""
                    op._ha_remote_id = pos.remote_id
                    asked = set()
                    for entry in self._answers(pos, item):
                        if entry["question"] not in asked:  # one answer per question, as pretix's order API keeps
                            asked.add(entry["question"])
                            answers.append((op, entry))
                    positions.append(op)
            except SkipOrder:
                continue  # the usual path says why
            promo = sorted({p.promo_code for p in remote.positions if p.promo_code})
            discount = sum((p.discount for p in remote.positions), Decimal("0.00"))
            order.comment = _("HelloAsso promo code: {codes} (discount {amount} {currency})").format(
                codes=", ".join(promo), amount=discount, currency=self.event.currency) if promo else ""
            order.api_meta = {"helloasso_order_id": remote.remote_id, "helloasso_promo_codes": promo, "helloasso_discount": str(discount)}
            ia = None
            if remote.street or remote.city or remote.company or remote.country:
                ia = InvoiceAddress(is_business=bool(remote.company), company=remote.company, street=remote.street, zipcode=remote.zipcode,
                                    city=remote.city, country=remote.country or "",
                                    name_parts={"_scheme": "given_family", "given_name": remote.first_name, "family_name": remote.last_name})
                ia.name_cached = ia.name
            for op in positions:
                op._calculate_tax(invoice_address=ia)
            order.total = sum((op.price for op in positions), Decimal("0.00"))
            paid = [rp for rp in remote.payments if rp.state in (P.PAID, P.REFUNDED, P.CONTESTED)]
            if order.total == Decimal("0.00") and paid:
                continue
            built.append({"remote": remote, "order": order, "positions": positions, "answers": answers, "ia": ia, "paid": paid})
        return built

    def _insert_orders(self, built, InvoiceAddress, QuestionAnswer, LogEntry, Transaction, get_random_string, assign_ticket_secret):
        from django.conf import settings as django_settings

        from pretix.base.services.orders import apply_rounding

        event, organizer_id = self.event, self.event.organizer_id
        # order codes, pseudonymization ids and ticket secrets: unique, checked with one query each for the page
        code_chars = list("ABCDEFGHJKLMNPQRSTUVWXYZ379")
        codes = self._unique_strings(
            len(built), lambda: get_random_string(length=django_settings.ENTROPY["order_code"], allowed_chars=code_chars),
            lambda c: Order.objects.filter(event__organizer_id=organizer_id, code__in=c).values_list("code", flat=True))
        all_positions = [op for b in built for op in b["positions"]]
        pseudo_chars = list("ABCDEFGHJKLMNPQRSTUVWXYZ3789")
        pseudos = self._unique_strings(
            len(all_positions), lambda: get_random_string(length=10, allowed_chars=pseudo_chars),
            lambda c: OrderPosition.all.filter(pseudonymization_id__in=c).values_list("pseudonymization_id", flat=True))
        wanted = {op._ha_secret for op in all_positions if op._ha_secret}
        taken = set(OrderPosition.all.filter(order__event__organizer_id=organizer_id, secret__in=wanted).values_list("secret", flat=True)
                    ) if wanted else set()
        used = set()
        for b, code in zip(built, codes):
            b["order"].code = code
        for op, pseudo in zip(all_positions, pseudos):
            op.pseudonymization_id = pseudo
            if op._ha_secret and op._ha_secret not in taken and op._ha_secret not in used:
                op.secret = op._ha_secret
            else:
                assign_ticket_secret(event=event, position=op, force_invalidate=True, save=False)
            used.add(op.secret)
        generated = {op.secret for op in all_positions if op.secret != op._ha_secret}
        if generated and OrderPosition.all.filter(order__event__organizer_id=organizer_id, secret__in=generated).exists():
            raise SkipOrder("secret collision")  # practically impossible: the usual path retries one by one
        rounding = event.settings.tax_rounding
        for b in built:
            b["order"].tax_rounding_mode = rounding
            apply_rounding(rounding, b["ia"], event.currency, b["positions"])
            b["order"].total = sum((op.price for op in b["positions"]), Decimal("0.00"))
            paid_sum = sum((rp.amount for rp in b["paid"]), Decimal("0.00"))
            b["order"].status = Order.STATUS_PAID if (b["order"].total == Decimal("0.00") or (b["paid"] and paid_sum >= b["order"].total)) \
                else Order.STATUS_PENDING
        orders = Order.objects.bulk_create([b["order"] for b in built])
        for b in built:
            for op in b["positions"]:
                op.order = b["order"]
            if b["ia"]:
                b["ia"].order = b["order"]
        # parents first, so add-ons can point at them
        OrderPosition.objects.bulk_create([op for op in all_positions if op.addon_to is None])
        for op in all_positions:
            if op.addon_to is not None:
                op.addon_to_id = op.addon_to.pk
        OrderPosition.objects.bulk_create([op for op in all_positions if op.addon_to is not None])
        InvoiceAddress.objects.bulk_create([b["ia"] for b in built if b["ia"]])
        qas, qa_options = [], []
        for b in built:
            for op, entry in b["answers"]:
                qa = QuestionAnswer(orderposition=op, question_id=entry["question"], answer=entry["answer"])
                qas.append(qa)
                qa_options.append(entry["options"])
        QuestionAnswer.objects.bulk_create(qas)
        Through = QuestionAnswer.options.through
        Through.objects.bulk_create([Through(questionanswer_id=qa.pk, questionoption_id=opt) for qa, opts in zip(qas, qa_options) for opt in opts])

        payments, logs, transactions, mapping = [], [], [], []
        for b in built:
            order, remote = b["order"], b["remote"]
            logs.append(order.log_action("pretix.event.order.placed", data={"source": "helloasso", "helloasso_order_id": remote.remote_id},
                                         save=False))
            mapping.append(RemoteObject(event=event, kind=RemoteObject.ORDER, remote_id=str(remote.remote_id), order=order,
                                        synced={"fp": fingerprint(remote)}))
            for op in b["positions"]:
                mapping.append(RemoteObject(event=event, kind=RemoteObject.POSITION, remote_id=str(op._ha_remote_id), order=order, position=op))
            b["payments"] = []
            if order.total == Decimal("0.00"):
                payments.append(OrderPayment(order=order, local_id=1, amount=Decimal("0.00"), provider="free", info="{}",
                                             payment_date=now(), state=OrderPayment.PAYMENT_STATE_CONFIRMED))
            for i, rp in enumerate(b["paid"], start=1):
                pay = OrderPayment(order=order, local_id=i, provider="helloasso", amount=rp.amount, state=OrderPayment.PAYMENT_STATE_CONFIRMED,
                                   payment_date=rp.date or now(),
                                   info=json.dumps({"helloasso_payment_id": rp.remote_id, "means": rp.means, "installment": rp.installment}))
                payments.append(pay)
                b["payments"].append((rp, pay))
                logs.append(order.log_action("pretix.event.order.payment.confirmed", data={"local_id": i, "provider": "helloasso"}, save=False))
            if b["paid"] and order.status == Order.STATUS_PAID:
                # logged with the payment that made the order paid, as OrderPayment.confirm() does
                running, last = Decimal("0.00"), b["payments"][-1][1]
                for _rp, pay in b["payments"]:
                    running += pay.amount
                    if running >= order.total:
                        last = pay
                        break
                logs.append(order.log_action("pretix.event.order.paid", data={"provider": "helloasso", "info": last.info,
                                                                              "date": last.payment_date, "force": True}, save=False))
            transactions += order.create_transactions(is_new=True, fees=[], positions=b["positions"], save=False)
        OrderPayment.objects.bulk_create(payments)
        for b in built:
            for rp, pay in b["payments"]:
                mapping.append(RemoteObject(event=event, kind=RemoteObject.PAYMENT, remote_id=str(rp.remote_id), order=b["order"], payment=pay))
        RemoteObject.objects.bulk_create(mapping)
        Transaction.objects.bulk_create(transactions)
        self._save_logs(logs, LogEntry)
        for b in built:  # pretix's receivers of order_placed / order_paid read the positions: no query for them
            qs = OrderPosition.objects.filter(order=b["order"])
            qs._result_cache = list(b["positions"])
            qs._prefetch_done = True
            b["order"]._prefetched_objects_cache = {"all_positions": qs}
        event.cache.clear()
        return orders

    def _save_logs(self, logs, LogEntry):
        """pretix's ``LogEntry.bulk_create_and_postprocess``, without the webhook task when the organiser has no webhook.

        That task looks up the webhooks once per log entry (three per imported order): for an organiser without any
        enabled webhook it has nothing to send, so the notifications task alone is queued, as pretix would.
        """
        from django.conf import settings as django_settings

        from pretix.api.models import WebHook
        from pretix.base.services.notifications import notify
        from pretix.helpers.celery import get_task_priority

        LogEntry.objects.bulk_create(logs)
        if WebHook.objects.filter(organizer_id=self.event.organizer_id, enabled=True).exists():
            LogEntry.bulk_postprocess(logs)
            return
        to_notify = [le.id for le in logs if le.notification_type]
        if to_notify:
            notify.apply_async(args=(to_notify,), priority=django_settings.PRIORITY_CELERY_HIGHEST_FUNC(
                [get_task_priority("notifications", self.event.organizer_id)]))

    def _page_quota_warnings(self, item_ids):
        for q in Quota.objects.filter(event=self.event, items__in=item_ids, size__isnull=False).distinct():
            if q.pk in self.warned_quotas:
                continue
            sold = OrderPosition.objects.filter(order__event=self.event, order__status__in=(Order.STATUS_PAID, Order.STATUS_PENDING),
                                                item__in=q.items.all()).count()
            if sold > q.size:
                self.warned_quotas.add(q.pk)
                self.report.warnings.append(_("Quota “{name}” is exceeded: {sold} tickets for {size} places.").format(
                    name=q.name, sold=sold, size=q.size))

    def _send_confirmation(self, order):
        """The organiser turned pretix emails on for imported buyers: the usual "paid" (or "placed") email, with tickets."""
        from pretix.base.email import get_email_context

        order.refresh_from_db()
        paid = order.status == Order.STATUS_PAID
        s = self.event.settings
        try:
            with language(order.locale, s.region):
                order.send_mail(
                    s.mail_subject_order_paid if paid else s.mail_subject_order_placed,
                    s.mail_text_order_paid if paid else s.mail_text_order_placed,
                    get_email_context(event=self.event, order=order, payment_info="") if paid else
                    get_email_context(event=self.event, order=order, payments=list(order.payments.all())),
                    "pretix.event.order.email.order_paid" if paid else "pretix.event.order.email.order_placed",
                    attach_tickets=True,
                )
        except Exception:  # noqa: B902 - an email problem never stops an import
            logger.exception("could not send the confirmation of the imported order %s", order.code)

    # order update

    def _update(self, order: Order, remote: P.RemoteOrder, counted=False):
        changed = False
        # positions cancelled on HelloAsso
        mapped = {ro.remote_id: ro.position for ro in RemoteObject.objects.filter(event=self.event, kind=RemoteObject.POSITION, order=order)
                  .select_related("position")}
        to_cancel = [mapped[p.remote_id] for p in remote.positions
                     if p.state == P.CANCELED and p.remote_id in mapped and mapped[p.remote_id] and not mapped[p.remote_id].canceled]
        unknown = [p.remote_id for p in remote.positions if p.state != P.CANCELED and p.remote_id not in mapped]
        if unknown and not counted:
            self.report.warnings.append(_("Order {code}: HelloAsso shows items that are not in the pretix order ({ids}); "
                                          "add them by hand if they are real.").format(code=order.code, ids=", ".join(unknown)))
        changed |= self._payments(order, remote, new=False)
        order.refresh_from_db()
        if to_cancel and order.status != Order.STATUS_CANCELED:
            still_valid = [p for p in order.positions.all() if p.pk not in {c.pk for c in to_cancel} and not (
                p.addon_to_id and p.addon_to_id in {c.pk for c in to_cancel})]
            if not still_valid:
                cancel_order(order.pk, send_mail=self.link.send_emails, cancellation_fee=None, try_auto_refund=False)
            else:
                ocm = OrderChangeManager(order, notify=self.link.send_emails)
                for pos in to_cancel:
                    if not pos.addon_to_id or pos.addon_to_id not in {c.pk for c in to_cancel}:
                        ocm.cancel(pos)
                ocm.commit(check_quotas=False)
            order.log_action("pretix_helloasso_bridge.order.cancelled_on_helloasso",
                             data={"positions": [p.positionid for p in to_cancel], "helloasso_order_id": remote.remote_id})
            self.report.orders_cancelled += 1
            changed = True
        if changed and not counted:
            self.report.orders_updated += 1

    def _payments(self, order: Order, remote: P.RemoteOrder, *, new: bool) -> bool:
        changed = False
        refunded = False
        for rp in remote.payments:
            ro = _remote(self.event, RemoteObject.PAYMENT, rp.remote_id)
            payment = ro.payment if ro else None
            if payment is None and rp.state in (P.PAID, P.REFUNDED, P.CONTESTED):
                payment = order.payments.create(
                    provider="helloasso", amount=rp.amount, state=OrderPayment.PAYMENT_STATE_CREATED,
                    info=json.dumps({"helloasso_payment_id": rp.remote_id, "means": rp.means, "installment": rp.installment}),
                )
                payment.confirm(send_mail=False, force=True, ignore_date=True, payment_date=rp.date,
                                count_waitinglist=False, generate_invoice=False)
                _remember(self.event, RemoteObject.PAYMENT, rp.remote_id, order=order, payment=payment)
                changed = True
            if payment is None:
                continue
            for rf in rp.refunds:
                if not rf.done or _remote(self.event, RemoteObject.REFUND, rf.remote_id):
                    continue
                refund = order.refunds.create(
                    provider="helloasso", payment=payment, amount=rf.amount, state=OrderRefund.REFUND_STATE_DONE,
                    source=OrderRefund.REFUND_SOURCE_EXTERNAL, execution_date=rf.date or now(),
                    info=json.dumps({"helloasso_refund_id": rf.remote_id}),
                )
                order.log_action("pretix.event.order.refund.done",
                                 data={"local_id": refund.local_id, "provider": "helloasso", "helloasso_refund_id": rf.remote_id})
                _remember(self.event, RemoteObject.REFUND, rf.remote_id, order=order, refund=refund)
                refunded = changed = True
            if rp.state == P.CONTESTED and not (ro and ro.synced.get("contested")):
                order.log_action("pretix_helloasso_bridge.order.contested", data={"helloasso_payment_id": rp.remote_id})
                Order.objects.filter(pk=order.pk).update(checkin_attention=True,
                                                         checkin_text=_("HelloAsso payment contested (chargeback)"))
                _remember(self.event, RemoteObject.PAYMENT, rp.remote_id, order=order, payment=payment, synced={"contested": True})
                self.report.warnings.append(_("Order {code}: the HelloAsso payment {id} is contested (chargeback). The order was not "
                                              "cancelled; please check it.").format(code=order.code, id=rp.remote_id))
                changed = True
        if refunded:
            self.report.orders_refunded += 1
        if new:
            order.refresh_from_db()
            if order.status == Order.STATUS_PAID:
                order_paid.send(self.event, order=order)
        return changed

    def _quota_warnings(self, order):
        self._page_quota_warnings(order.positions.values("item"))


class SkipOrder(Exception):
    pass


def run_sync(event, *, trigger="manual", full=False, provider=None, report=None):
    """Run a sync of ``event`` now, inside its organiser's scope. Returns the report."""
    from .config import provider_for

    with scope(organizer=event.organizer):
        link = FormLink.objects.select_related("event").get(event=event)
        provider = provider or provider_for(event.organizer)
        return Sync(link, provider, trigger=trigger, full=full, report=report).run()
