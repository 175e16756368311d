"""What happens to a card when its order moves: placed, paid, cancelled, changed, reactivated."""
import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.models import CartPosition
from pretix.base.services.orders import OrderError

from . import deferred_checks
from .checkout import FIELD_NAME, reference_of, with_reference
from .config import SortirConfig
from .holds import HOLD_STATES, holder_name, release, requires_card
from .models import CardUsage

LOG_PREFIX = "pretix_sortir.usage."


def log_usage(usage, action, order=None, user=None, **data):
    """One entry in the order's log for one card (position number and last four digits only)."""
    order = order or (usage.order if usage.order_id else None)
    if order is None:
        return
    order.log_action(LOG_PREFIX + action, user=user, data={
        "position": usage.order_position.positionid if usage.order_position_id else None, "last4": usage.card_last4, **data,
    })


def _cards(usages):
    """The compact form used in log entries that cover several cards of one order."""
    return sorted(({"position": u.order_position.positionid if u.order_position_id else None, "last4": u.card_last4}
                   for u in usages), key=lambda c: c["position"] or 0)


def _reference(position):
    return reference_of(position)


def check_cart_before_order(event, positions, email=None):
    """
    validate_order: every Sortir! ticket must still hold its own card (checked, or unchecked in degraded mode).
    The hold's reference goes into the position's meta_info, which pretix copies to the order position.
    """
    needing = [cp for cp in positions if requires_card(event, cp.item_id, cp.variation_id)]
    if not needing:
        deferred_checks.expect_order(None)
        return
    holds = CardUsage.objects.filter(cart_position_id__in=[cp.pk for cp in needing], state__in=HOLD_STATES)
    held = {u.cart_position_id: u for u in holds}
    for cp in needing:
        if cp.pk not in held:
            raise OrderError(_("The Sortir! card number of the ticket “{item}” is missing or no longer reserved for you. "
                               "Please go back to the previous step and enter it again.").format(item=cp.item.name))
    for cp in needing:
        ref = str(held[cp.pk].reference)
        if reference_of(cp) != ref or "|" in str(cp.meta_info_data.get("question_form_data", {}).get(FIELD_NAME, "")):
            CartPosition.objects.filter(pk=cp.pk).update(meta_info=json.dumps(with_reference(cp.meta_info_data, ref)))
    unchecked = [pk for pk, u in held.items() if u.state == CardUsage.UNCHECKED]
    deferred_checks.expect_order(event, email=email, cart_position_ids=unchecked)


def bind_order(order):
    """
    order_placed: the holds become usages of the order's positions. Sortir! tickets that come without a hold
    (REST API, CSV import) get a "no card yet" usage, so the organiser sees them and can attach a card.
    """
    from .missing import flag_positions_without_card

    all_positions = list(order.positions.all())
    usages = _bind_holds(order, all_positions)
    flag_positions_without_card(order, positions=all_positions, bound={u.order_position.pk for u in usages})


def _bind_holds(order, all_positions):
    """One read, a small update per card, one log entry; returns the bound usages."""
    positions = {_reference(op): op for op in all_positions}
    positions.pop(None, None)
    if not positions:
        return []
    usages = list(CardUsage.objects.filter(reference__in=list(positions), event=order.event, state__in=HOLD_STATES))
    if not usages:
        return []
    prefill = SortirConfig.for_organizer(order.event.organizer).prefill_names
    for usage in usages:
        op = positions[str(usage.reference)]
        name = holder_name(usage)
        # An unchecked card (degraded mode) stays unchecked: it is checked in the background (deferred_checks).
        state = CardUsage.UNCHECKED if usage.state == CardUsage.UNCHECKED else CardUsage.VALIDATED
        # Plain per-row updates: cheaper than bulk_update's CASE expressions for the few tickets of an order.
        CardUsage.objects.filter(pk=usage.pk).update(state=state, order=order, order_position=op, cart_position=None,
                                                     holder_name_secret="", updated=now())
        usage.state = state
        usage.order_position = op
        if prefill and name and not op.attendee_name_cached:
            op.attendee_name_parts = {"_legacy": name}
            op.save(update_fields=["attendee_name_parts", "attendee_name_cached"])
    checked = [u for u in usages if u.state == CardUsage.VALIDATED]
    if checked:
        order.log_action(LOG_PREFIX + "validated_many", data={"cards": _cards(checked)})
    if len(checked) < len(usages):
        deferred_checks.order_placed_unchecked(order, [u for u in usages if u.state == CardUsage.UNCHECKED])
    return usages


def mark_paid(order):
    """order_paid: queue the grants (sent by a task after commit, never inside the payment request)."""
    usages = list(order.sortir_usages.filter(state=CardUsage.VALIDATED).select_related("order_position"))
    if not usages:
        return
    cards = _cards(usages)
    if order.testmode:
        order.log_action(LOG_PREFIX + "grant_skipped_testmode_many", data={"cards": cards})
        return
    CardUsage.objects.filter(pk__in=[u.pk for u in usages]).update(state=CardUsage.GRANT_PENDING, grant_next_attempt=now())
    order.log_action(LOG_PREFIX + "grant_pending_many", data={"cards": cards})
    schedule_grants(order.event_id, [u.pk for u in usages])


def schedule_grants(event_id, usage_ids):
    """
    With a celery worker, send right after the commit. Without one (celery "eager" mode, small installs),
    tasks would run inside the buyer's or organiser's request: leave them to the periodic task instead.
    """
    from .tasks import send_grants

    if getattr(settings, "HAS_CELERY", False):
        transaction.on_commit(lambda: send_grants.apply_async(kwargs={"event": event_id, "usage_ids": usage_ids}))


def release_order(order, reason):
    """Cancelled, expired, denied or refunded: free the cards if the organiser wants it."""
    if not SortirConfig.for_organizer(order.event.organizer).release_on_cancel:
        return
    _release_and_log(order, order.sortir_usages.filter(state__in=CardUsage.ACTIVE_STATES), reason)


def release_changed_positions(order):
    """
    order_changed (control panel, REST API, a buyer's own change): each card follows its ticket.

    - a cancelled position frees its card if the organiser releases on cancel;
    - a position changed to a product without Sortir! frees its card;
    - a position moved to another date keeps its card if the card is free on that date, otherwise the card is
      released and the ticket is flagged "no card yet";
    - a new Sortir! position (added, or changed to a Sortir! product) without a card is flagged "no card yet".
    """
    from .missing import flag_positions_without_card

    release_on_cancel = SortirConfig.for_organizer(order.event.organizer).release_on_cancel
    released, gone = [], []
    qs = order.sortir_usages.filter(state__in=CardUsage.ACTIVE_STATES + (CardUsage.MISSING,)).select_related(
        "order_position__item", "order_position__variation", "order_position__subevent")
    for u in qs:
        op = u.order_position
        if u.state == CardUsage.MISSING:
            if op is None or op.canceled or not requires_card(order.event, op.item_id, op.variation_id):
                gone.append(u.pk)  # nothing to attach any more
            elif (op.subevent_id or 0) != u.date_key:
                CardUsage.objects.filter(pk=u.pk).update(subevent=op.subevent, date_key=op.subevent_id or 0, updated=now())
        elif op is None or op.canceled:
            if release_on_cancel:
                released.append(u.pk)
        elif not requires_card(order.event, op.item_id, op.variation_id):
            released.append(u.pk)
        elif (op.subevent_id or 0) != u.date_key:
            _follow_new_date(order, u, op)
    if gone:
        release(CardUsage.objects.filter(pk__in=gone))
    if released:
        _release_and_log(order, CardUsage.objects.filter(pk__in=released), "position_changed")
    flag_positions_without_card(order, reason="changed")


def _follow_new_date(order, usage, op):
    """The card is checked for the new date (the once-per-date rule, decided by the unique index)."""
    try:
        with transaction.atomic():
            CardUsage.objects.filter(pk=usage.pk).update(subevent=op.subevent, date_key=op.subevent_id or 0, updated=now())
    except IntegrityError:
        release(CardUsage.objects.filter(pk=usage.pk), erase=False)
        log_usage(usage, "taken_on_new_date", order=order)
    else:
        log_usage(usage, "date_changed", order=order)


def follow_split(original, split_order):
    """order_split: the cards of the moved tickets follow them to the new order (its payment sends their grants)."""
    moved = list(CardUsage.objects.filter(order=original, order_position__order=split_order).select_related("order_position"))
    if not moved:
        return
    CardUsage.objects.filter(pk__in=[u.pk for u in moved]).update(order=split_order, updated=now())
    for u in moved:
        if u.state == CardUsage.MISSING:
            continue
        card = {"position": u.order_position.positionid, "last4": u.card_last4}
        original.log_action(LOG_PREFIX + "split_to", data={**card, "order": split_order.code})
        split_order.log_action(LOG_PREFIX + "split_from", data={**card, "order": original.code})
    if split_order.status == split_order.STATUS_PAID:
        mark_paid(split_order)  # pretix sends no order_paid for a split-off order that its payments already cover


def _release_and_log(order, qs, reason):
    usages = list(qs.select_related("order_position"))
    # The service key stays (encrypted) until the retention period ends, so a reactivated order can still send its grant.
    release(CardUsage.objects.filter(pk__in=[u.pk for u in usages]), erase=False)
    for u in usages:
        log_usage(u, "released", order=order, reason=reason)


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
            log_usage(u, "retaken", order=order)
        except IntegrityError:
            log_usage(u, "retake_failed", order=order)


def next_retry(attempts):
    """Back-off for grant retries: 1, 5, 15, 60 minutes, then every 3 hours."""
    steps = [1, 5, 15, 60]
    return now() + timedelta(minutes=steps[attempts - 1] if attempts - 1 < len(steps) else 180)
