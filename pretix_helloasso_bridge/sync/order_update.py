"""Updating an already imported order: tickets added later on the remote platform become new positions, tickets
cancelled there cancel their pretix positions. Every position is keyed on its remote item id, so nothing is added twice."""
import logging
from datetime import timedelta

from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.models import Checkin, CheckinList, Order, OrderPosition, QuestionAnswer
from pretix.base.services.orders import OrderChangeManager, OrderError, cancel_order
from pretix.base.signals import checkin_created

from .. import providers as P
from ..models import RemoteObject
from .errors import SkipOrder
from .order_create import order_log_ids, order_meta
from .remote_ids import remember

logger = logging.getLogger(__name__)


class OrderUpdate:
    """Part of :class:`~.run.Sync`."""

    def _update(self, order: Order, remote: P.RemoteOrder, counted=False):
        mapped = {ro.remote_id: ro.position for ro in RemoteObject.objects.filter(event=self.event, kind=RemoteObject.POSITION, order=order)
                  .select_related("position")}
        # tickets added first, so the payments that came with them find the new total
        changed = bool(self._add_positions(order, remote, mapped))
        meta = order_meta(self.provider, remote)
        if any(order.api_meta.get(k) != v for k, v in meta.items()):  # e.g. a ticket added later with a promo code (older imports: the neutral keys)
            order.api_meta = {**order.api_meta, **meta}
            Order.objects.filter(pk=order.pk).update(api_meta=order.api_meta)
            changed = True
        changed |= self._payments(order, remote, new=False)
        changed |= bool(self._update_answers(order, remote, mapped))
        changed |= bool(self._import_checkins(order, remote, mapped))
        order.refresh_from_db()
        # positions cancelled on the platform
        to_cancel = [mapped[p.remote_id] for p in remote.positions
                     if p.state == P.CANCELED and p.remote_id in mapped and mapped[p.remote_id] and not mapped[p.remote_id].canceled]
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
                             data={"positions": [p.positionid for p in to_cancel], **order_log_ids(self.provider, remote)})
            self.report.orders_cancelled += 1
            changed = True
        if changed and not counted:
            self.report.orders_updated += 1

    def _update_answers(self, order: Order, remote: P.RemoteOrder, mapped: dict) -> int:
        """Answers changed (or given later) on the platform, on tickets already imported: the pretix answers follow, logged
        as pretix logs an answer changed in the backend. Answers that disappeared on the platform are kept (the platforms
        leave empty answers out, so a removal cannot be told from a field nobody filled)."""
        changes = []
        for pos in remote.positions:
            op = mapped.get(pos.remote_id)
            if op is None or op.canceled or pos.state == P.CANCELED:
                continue
            existing = {qa.question_id: qa for qa in op.answers.all()}
            done = set()
            for entry in self._answers(pos, op.item, remote):
                if entry["question"] in done:
                    continue
                done.add(entry["question"])
                qa = existing.get(entry["question"])
                if qa is None:
                    qa = QuestionAnswer.objects.create(orderposition=op, question_id=entry["question"], answer=entry["answer"])
                elif qa.answer == entry["answer"] and sorted(o.pk for o in qa.options.all()) == sorted(entry["options"]):
                    continue
                else:
                    qa.answer = entry["answer"]
                    qa.save(update_fields=["answer"])
                qa.options.set(entry["options"])
                changes.append({"position": op.pk, "positionid": op.positionid, "question": entry["question"],
                                "answer": entry["answer"]})
        if changes:
            order.log_action("pretix.event.order.modified", data={"data": changes, "source": self.provider.identifier})
        return len(changes)

    def _checkin_list(self):
        """The event's default check-in list (all products, all dates), created as pretix creates it for a new event."""
        if getattr(self, "_default_checkin_list", None) is None:
            lists = self.event.checkin_lists.filter(subevent__isnull=True).order_by("pk")
            self._default_checkin_list = lists.filter(all_products=True).first() or lists.first() or CheckinList.objects.create(
                event=self.event, name=_("Default"), all_products=True)
        return self._default_checkin_list

    def _import_checkins(self, order: Order, remote: P.RemoteOrder, mapped: dict) -> int:
        """Tickets already scanned at the door on the platform: one pretix check-in each, at the platform's scan date, on the
        event's default check-in list; the position's mapping row remembers it, so a later sync never adds it again."""
        todo = {p.remote_id: p.checked_in for p in remote.positions if p.checked_in and mapped.get(p.remote_id)
                and not mapped[p.remote_id].canceled}
        if not todo:
            return 0
        rows = RemoteObject.objects.filter(event=self.event, kind=RemoteObject.POSITION, remote_id__in=list(todo), order=order)
        added = 0
        for ro in rows:
            if (ro.synced or {}).get("checkin"):
                continue
            op, dt = mapped[ro.remote_id], todo[ro.remote_id]
            clist = self._checkin_list()
            ci = Checkin.objects.create(position=op, list=clist, datetime=dt, type=Checkin.TYPE_ENTRY, raw_barcode=op.secret,
                                        forced=True, force_sent=True)
            order.log_action("pretix.event.checkin", data={
                "position": op.pk, "positionid": op.positionid, "first": True, "forced": True, "datetime": dt,
                "type": Checkin.TYPE_ENTRY, "list": clist.pk, "source": self.provider.identifier})
            checkin_created.send(self.event, checkin=ci)
            ro.synced = {**(ro.synced or {}), "checkin": dt.isoformat()}
            ro.save(update_fields=["synced", "updated"])
            added += 1
        return added

    def _add_positions(self, order: Order, remote: P.RemoteOrder, mapped: dict) -> int:
        """Tickets (and options) added on the platform to an imported order: new pretix positions through pretix's
        OrderChangeManager (logged, quotas counted but never refusing), with attendee, answers and ticket code."""
        todo = [p for p in remote.positions if p.state != P.CANCELED and p.remote_id not in mapped]
        added = 0
        while todo:
            # parents (and options of tickets already in the order) first, then the options of the tickets just added
            ready = [p for p in todo if not p.addon_to or mapped.get(p.addon_to)]
            if not ready:
                raise SkipOrder(_("an option belongs to a cancelled item"))
            todo = [p for p in todo if p not in ready]
            order.refresh_from_db()
            ocm = OrderChangeManager(order, notify=self.link.send_emails)
            results = []
            try:
                for pos in ready:
                    item = self._item_for(pos)
                    results.append((pos, item, ocm.add_position(
                        item, None, pos.price, addon_to=mapped.get(pos.addon_to) if pos.addon_to else None,
                        subevent=self._subevent_for(pos) if self.event.has_subevents else None)))
                ocm.commit(check_quotas=False)
            except OrderError as e:
                raise SkipOrder(_("pretix refused the new item: {error}").format(error=str(e))) from None
            for pos, item, result in results:
                op = result.position
                if pos.attendee_first_name or pos.attendee_last_name:
                    op.attendee_name_parts = {"_scheme": "given_family", "given_name": pos.attendee_first_name, "family_name": pos.attendee_last_name}
                if pos.attendee_email:
                    op.attendee_email = pos.attendee_email
                taken = OrderPosition.all.filter(order__event__organizer_id=self.event.organizer_id, secret=pos.secret).exists() if pos.secret else True
                if not pos.addon_to and not taken:
                    op.secret = pos.secret
                op.save()
                asked = set()
                for entry in self._answers(pos, item, remote):
                    if entry["question"] not in asked:
                        asked.add(entry["question"])
                        qa = QuestionAnswer.objects.create(orderposition=op, question_id=entry["question"], answer=entry["answer"])
                        if entry["options"]:
                            qa.options.set(entry["options"])
                remember(self.event, RemoteObject.POSITION, pos.remote_id, order=order, position=op)
                mapped[pos.remote_id] = op
                added += 1
        if added:
            # pretix's order change sets an order that is no longer fully paid to expire now: imported orders never expire
            Order.objects.filter(pk=order.pk).update(expires=max(now(), self.event.date_to or self.event.date_from) + timedelta(days=365))
            order.refresh_from_db()
            self._quota_warnings(order)
        return added
