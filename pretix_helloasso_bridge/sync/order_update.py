"""Updating an already imported order: tickets cancelled on the remote platform cancel their pretix positions."""
import logging

from django.utils.translation import gettext as _

from pretix.base.models import Order
from pretix.base.services.orders import OrderChangeManager, cancel_order

from .. import providers as P
from ..models import RemoteObject

logger = logging.getLogger(__name__)


class OrderUpdate:
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
