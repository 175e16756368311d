"""What happens to a card when its order moves: placed, paid, cancelled, changed, reactivated."""
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.services.orders import OrderError

from .checkout import FIELD_NAME, reference_from_stored
from .config import SortirConfig
from .holds import holder_name, release, requires_card
from .models import CardUsage

LOG_PREFIX = "pretix_sortir.usage."


def _log(order, action, usage, **data):
    order.log_action(LOG_PREFIX + action, data={"position": usage.order_position.positionid if usage.order_position_id else None,
                                                "last4": usage.card_last4, **data})


def check_cart_before_order(event, positions):
    """validate_order: every Sortir! ticket must still hold its own, checked card."""
    for cp in positions:
        if not requires_card(cp.item, cp.variation):
            continue
        ref = reference_from_stored(cp.meta_info_data.get("question_form_data", {}).get(FIELD_NAME))
        usage = CardUsage.objects.filter(reference=ref, cart_position=cp, state=CardUsage.HELD).first() if ref else None
        if usage is None:
            raise OrderError(_("The Sortir! card number of the ticket “{item}” is missing or no longer reserved for you. "
                               "Please go back to the previous step and enter it again.").format(item=cp.item.name))


def bind_order(order):
    """order_placed: the holds become usages of the order's positions."""
    cfg = SortirConfig.for_organizer(order.event.organizer)
    for op in order.positions.select_related("item", "variation"):
        ref = reference_from_stored(op.meta_info_data.get("question_form_data", {}).get(FIELD_NAME))
        if not ref:
            continue
        usage = CardUsage.objects.filter(reference=ref, event=order.event, state=CardUsage.HELD).first()
        if usage is None:
            continue
        name = holder_name(usage)
        usage.state = CardUsage.VALIDATED
        usage.order = order
        usage.order_position = op
        usage.cart_position = None
        usage.holder_name_secret = ""
        usage.save(update_fields=["state", "order", "order_position", "cart_position", "holder_name_secret", "updated"])
        if cfg.prefill_names and name and not op.attendee_name_cached:
            op.attendee_name_parts = {"_legacy": name}
            op.save(update_fields=["attendee_name_parts", "attendee_name_cached"])
        _log(order, "validated", usage)


def mark_paid(order):
    """order_paid: queue the grants (sent by a task after commit, never inside the payment request)."""
    from .tasks import send_grants

    usages = list(order.sortir_usages.filter(state=CardUsage.VALIDATED))
    if not usages:
        return
    if order.testmode:
        for u in usages:
            _log(order, "grant_skipped_testmode", u)
        return
    CardUsage.objects.filter(pk__in=[u.pk for u in usages]).update(state=CardUsage.GRANT_PENDING, grant_next_attempt=now())
    for u in usages:
        _log(order, "grant_pending", u)
    transaction.on_commit(lambda: send_grants.apply_async(kwargs={"event": order.event_id, "usage_ids": [u.pk for u in usages]}))


def release_order(order, reason):
    """Cancelled, expired, denied or refunded: free the cards if the organiser wants it."""
    if not SortirConfig.for_organizer(order.event.organizer).release_on_cancel:
        return
    _release_and_log(order, order.sortir_usages.filter(state__in=CardUsage.ACTIVE_STATES), reason)


def release_changed_positions(order):
    """order_changed: cancelled positions, or positions changed to a product without Sortir!, free their card."""
    if not SortirConfig.for_organizer(order.event.organizer).release_on_cancel:
        return
    stale = []
    for u in order.sortir_usages.filter(state__in=CardUsage.ACTIVE_STATES).select_related("order_position__item", "order_position__variation"):
        op = u.order_position
        if op is None or op.canceled or not requires_card(op.item, op.variation) or (op.subevent_id or 0) != u.date_key:
            stale.append(u.pk)
    if stale:
        _release_and_log(order, CardUsage.objects.filter(pk__in=stale), "position_changed")


def _release_and_log(order, qs, reason):
    usages = list(qs.select_related("order_position"))
    # The service key stays (encrypted) until the retention period ends, so a reactivated order can still send its grant.
    release(CardUsage.objects.filter(pk__in=[u.pk for u in usages]), erase=False)
    for u in usages:
        _log(order, "released", u, reason=reason)


def reactivate_order(order):
    """order_reactivated: take the cards back if still free; otherwise tell the organiser in the order log."""
    for u in order.sortir_usages.filter(state=CardUsage.RELEASED).select_related("order_position"):
        if u.order_position is None or u.order_position.canceled:
            continue
        try:
            with transaction.atomic():
                if u.grant_id:
                    state = CardUsage.USED
                elif order.status == order.STATUS_PAID and not order.testmode:
                    state = CardUsage.GRANT_PENDING
                else:
                    state = CardUsage.VALIDATED
                CardUsage.objects.filter(pk=u.pk).update(state=state, grant_next_attempt=now())
            _log(order, "retaken", u)
        except IntegrityError:
            _log(order, "retake_failed", u)


def next_retry(attempts):
    """Back-off for grant retries: 1, 5, 15, 60 minutes, then every 3 hours."""
    steps = [1, 5, 15, 60]
    return now() + timedelta(minutes=steps[attempts - 1] if attempts - 1 < len(steps) else 180)
