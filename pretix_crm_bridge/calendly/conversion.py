"""A prospect who buys becomes a customer: an order of the same organiser with the prospect's email converts it."""
from django.db import transaction
from django.utils.timezone import now

from . import mautic
from .models import Prospect

LOG_CONVERTED = "pretix_crm_bridge.prospect.converted"


def convert_for_order(order):
    """Mark the prospect with this order's email as converted and link the order (once; test-mode orders never convert)."""
    if not order.email or order.testmode:
        return None
    with transaction.atomic():
        p = Prospect.objects.select_for_update().filter(organizer_id=order.event.organizer_id, email__iexact=order.email.strip()).first()
        if not p or (p.status == Prospect.CONVERTED and p.order_id):
            return None
        old = p.status
        p.status, p.order, p.converted_at, p.status_changed = Prospect.CONVERTED, order, now(), now()
        p.save(update_fields=["status", "order", "converted_at", "status_changed", "updated"])
        p.log_action(LOG_CONVERTED, data={"order": order.code, "event": order.event.slug, "old": old})
        mautic.schedule(p, mautic.CONVERTED)
    return p
