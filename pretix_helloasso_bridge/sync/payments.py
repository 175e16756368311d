"""Payments, installments, refunds and chargebacks of one order, each keyed on its remote id."""
import logging

from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.models import Order, OrderPayment, OrderRefund
from pretix.base.signals import order_paid

from .. import providers as P
from ..models import RemoteObject
from ..payment import payment_info, refund_info
from .remote_ids import lookup, remember

logger = logging.getLogger(__name__)


class PaymentsAndRefunds:
    def _payments(self, order: Order, remote: P.RemoteOrder, *, new: bool) -> bool:
        changed = False
        refunded = False
        for rp in remote.payments:
            ro = lookup(self.event, RemoteObject.PAYMENT, rp.remote_id)
            payment = ro.payment if ro else None
            if payment is None and rp.state in (P.PAID, P.REFUNDED, P.CONTESTED):
                payment = order.payments.create(
                    provider=self.provider.identifier, amount=rp.amount, state=OrderPayment.PAYMENT_STATE_CREATED,
                    info=payment_info(self.provider.identifier, rp),
                )
                payment.confirm(send_mail=False, force=True, ignore_date=True, payment_date=rp.date,
                                count_waitinglist=False, generate_invoice=False)
                remember(self.event, RemoteObject.PAYMENT, rp.remote_id, order=order, payment=payment)
                changed = True
            if payment is None:
                continue
            for rf in rp.refunds:
                if not rf.done or lookup(self.event, RemoteObject.REFUND, rf.remote_id):
                    continue
                refund = order.refunds.create(
                    provider=self.provider.identifier, payment=payment, amount=rf.amount, state=OrderRefund.REFUND_STATE_DONE,
                    source=OrderRefund.REFUND_SOURCE_EXTERNAL, execution_date=rf.date or now(),
                    info=refund_info(self.provider.identifier, rf),
                )
                order.log_action("pretix.event.order.refund.done",
                                 data={"local_id": refund.local_id, "provider": self.provider.identifier, "refund_id": rf.remote_id})
                remember(self.event, RemoteObject.REFUND, rf.remote_id, order=order, refund=refund)
                refunded = changed = True
            if rp.state == P.CONTESTED and not (ro and ro.synced.get("contested")):
                order.log_action("pretix_helloasso_bridge.order.contested",
                                 data={"provider": self.provider.identifier, "payment_id": rp.remote_id, "helloasso_payment_id": rp.remote_id})
                Order.objects.filter(pk=order.pk).update(checkin_attention=True,
                                                         checkin_text=_("{platform} payment contested (chargeback)").format(
                                                             platform=self.provider.verbose_name))
                remember(self.event, RemoteObject.PAYMENT, rp.remote_id, order=order, payment=payment, synced={"contested": True})
                self.report.warnings.append(_("Order {code}: the {platform} payment {id} is contested (chargeback). The order was not "
                                              "cancelled; please check it.").format(code=order.code, platform=self.provider.verbose_name,
                                                                                    id=rp.remote_id))
                changed = True
        if refunded:
            self.report.orders_refunded += 1
        if new:
            order.refresh_from_db()
            if order.status == Order.STATUS_PAID:
                order_paid.send(self.event, order=order)
        return changed
