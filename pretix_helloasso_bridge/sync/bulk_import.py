"""Bulk creation of new orders (the common case of a first import): one transaction, a few queries per page."""
import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.models import Order, OrderPayment, OrderPosition
from pretix.base.signals import order_paid, order_placed

from .. import providers as P
from ..models import RemoteObject
from ..payment import payment_info
from .catalogue import sales_channel
from .errors import SkipOrder
from .order_create import order_log_ids, order_meta, promo_codes, promo_comment
from .remote_ids import fingerprint

logger = logging.getLogger(__name__)


class BulkOrderImport:
    def _fast_candidate(self, remote: P.RemoteOrder) -> bool:
        """New orders that need nothing but creation: no cancelled item, refund, chargeback or free order with payments."""
        if not remote.email or not remote.positions:
            return False
        if any(p.state == P.CANCELED for p in remote.positions):
            return False
        if any(p.checked_in for p in remote.positions):  # scans on the platform: check-ins made by the usual path
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
        channel = sales_channel(self.event.organizer, self.provider)
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
                    op = OrderPosition(order=order, positionid=i, item=item, price=pos.price, organizer_id=self.event.organizer_id,
                                       attendee_email=pos.attendee_email or None,
                                       subevent=self._subevent_for(pos) if self.event.has_subevents else None)
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
                    for entry in self._answers(pos, item, remote):
                        if entry["question"] not in asked:  # one answer per question, as pretix's order API keeps
                            asked.add(entry["question"])
                            answers.append((op, entry))
                    positions.append(op)
            except SkipOrder:
                continue  # the usual path says why
            promo, discount = promo_codes(remote)
            order.comment = promo_comment(self.provider, promo, discount, self.event.currency) if promo else ""
            order.api_meta = order_meta(self.provider, remote)
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
            logs.append(order.log_action("pretix.event.order.placed", data={"source": self.provider.identifier, **order_log_ids(self.provider, remote)},
                                         save=False))
            mapping.append(RemoteObject(event=event, kind=RemoteObject.ORDER, remote_id=str(remote.remote_id), order=order,
                                        synced={"fp": fingerprint(remote), "v": remote.versions}))
            for op in b["positions"]:
                mapping.append(RemoteObject(event=event, kind=RemoteObject.POSITION, remote_id=str(op._ha_remote_id), order=order, position=op))
            b["payments"] = []
            if order.total == Decimal("0.00"):
                payments.append(OrderPayment(order=order, local_id=1, amount=Decimal("0.00"), provider="free", info="{}",
                                             payment_date=now(), state=OrderPayment.PAYMENT_STATE_CONFIRMED))
            for i, rp in enumerate(b["paid"], start=1):
                pay = OrderPayment(order=order, local_id=i, provider=self.provider.identifier, amount=rp.amount, state=OrderPayment.PAYMENT_STATE_CONFIRMED,
                                   payment_date=rp.date or now(),
                                   info=payment_info(self.provider.identifier, rp))
                payments.append(pay)
                b["payments"].append((rp, pay))
                logs.append(order.log_action("pretix.event.order.payment.confirmed", data={"local_id": i, "provider": self.provider.identifier}, save=False))
            if b["paid"] and order.status == Order.STATUS_PAID:
                # logged with the payment that made the order paid, as OrderPayment.confirm() does
                running, last = Decimal("0.00"), b["payments"][-1][1]
                for _rp, pay in b["payments"]:
                    running += pay.amount
                    if running >= order.total:
                        last = pay
                        break
                logs.append(order.log_action("pretix.event.order.paid", data={"provider": self.provider.identifier, "info": last.info,
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
