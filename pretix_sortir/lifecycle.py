"""What happens to a card when its order moves: placed, paid, cancelled, changed, reactivated."""
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.services.orders import OrderError

from .checkout import FIELD_NAME, reference_from_stored
from .config import SortirConfig
from .holds import holder_name, release, requires_card
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
    return reference_from_stored(position.meta_info_data.get("question_form_data", {}).get(FIELD_NAME))


def check_cart_before_order(event, positions):
    """validate_order: every Sortir! ticket must still hold its own, checked card."""
    needing = [cp for cp in positions if requires_card(event, cp.item_id, cp.variation_id)]
    if not needing:
        return
    refs = {cp.pk: _reference(cp) for cp in needing}
    held = set(CardUsage.objects.filter(reference__in=[r for r in refs.values() if r], state=CardUsage.HELD)
               .values_list("cart_position_id", "reference"))
    for cp in needing:
        if not refs[cp.pk] or (cp.pk, UUID(refs[cp.pk])) not in held:
            raise OrderError(_("The Sortir! card number of the ticket “{item}” is missing or no longer reserved for you. "
                               "Please go back to the previous step and enter it again.").format(item=cp.item.name))


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
    usages = list(CardUsage.objects.filter(reference__in=list(positions), event=order.event, state=CardUsage.HELD))
    if not usages:
        return []
    prefill = SortirConfig.for_organizer(order.event.organizer).prefill_names
    for usage in usages:
        op = positions[str(usage.reference)]
        name = holder_name(usage)
        # Plain per-row updates: cheaper than bulk_update's CASE expressions for the few tickets of an order.
        CardUsage.objects.filter(pk=usage.pk).update(state=CardUsage.VALIDATED, order=order, order_position=op, cart_position=None,
                                                     holder_name_secret="", updated=now())
        usage.order_position = op
        if prefill and name and not op.attendee_name_cached:
            op.attendee_name_parts = {"_legacy": name}
            op.save(update_fields=["attendee_name_parts", "attendee_name_cached"])
    order.log_action(LOG_PREFIX + "validated_many", data={"cards": _cards(usages)})
    return usages


def mark_paid(order):
    """
    order_paid: queue the grants (sent by a task after commit, never inside the payment request).

    pretix also sends order_paid for an *expired* order paid late (without order_reactivated) and after
    reactivating an order that is paid: cards released meanwhile are taken back first, if still free.
    Only tickets that still need their card get a grant.
    """
    rows = list(order.sortir_usages.filter(state__in=(CardUsage.VALIDATED, CardUsage.RELEASED))
                .select_related("order_position").order_by("-updated", "-pk"))
    if not rows:
        return
    if any(u.state == CardUsage.RELEASED for u in rows):
        retake_cards(order, PAID, usages=rows)
        rows = list(order.sortir_usages.filter(state=CardUsage.VALIDATED).select_related("order_position"))
    usages = [u for u in rows if u.state == CardUsage.VALIDATED and needs_card(order, u)]
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


#: why a card was taken back: reactivation, payment after its cards were released (e.g. a late payment of an
#: expired order), a new payment deadline for an expired order
REACTIVATED, PAID, EXTENDED = "reactivated", "paid", "extended"
RETAKE_ACTIONS = {REACTIVATED: "retaken", PAID: "retaken_paid", EXTENDED: "retaken_extended"}


def needs_card(order, usage):
    """The usage's ticket still exists, is not cancelled, and is (still) a Sortir! ticket of the usage's date."""
    op = usage.order_position
    return (op is not None and not op.canceled and requires_card(order.event, op.item_id, op.variation_id)
            and (op.subevent_id or 0) == usage.date_key)


def _not_needed_reason(usage):
    from .tasks import NO_CARD_REQUIRED, POSITION_CANCELED

    op = usage.order_position
    return POSITION_CANCELED if op is None or op.canceled else NO_CARD_REQUIRED


def release_order(order, reason):
    """
    Cancelled, expired, denied or refunded: free the cards if the organiser wants it. Either way no grant
    leaves for such an order any more, and a grant already sent is reported: APRAS must be told by hand.
    """
    usages = list(order.sortir_usages.filter(state__in=CardUsage.ACTIVE_STATES).select_related("order_position"))
    if not usages:
        return
    if SortirConfig.for_organizer(order.event.organizer).release_on_cancel:
        _release_and_log(order, CardUsage.objects.filter(pk__in=[u.pk for u in usages]), reason)
    else:
        from .tasks import ORDER_CANCELED

        _withdraw_grants(order, usages, ORDER_CANCELED)
        tell_apras_by_hand(order, usages, reason)


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


def settle_changed_positions(order):
    """
    order_changed, after the release rule ran: tickets cancelled or changed to a product (or date) that needs
    no card never receive a grant, whatever the "release on cancel" setting; a grant already sent for such a
    ticket is reported to the organiser (APRAS has no cancellation endpoint).
    """
    stale = [u for u in order.sortir_usages.filter(state__in=CardUsage.ACTIVE_STATES).select_related("order_position")
             if not needs_card(order, u)]
    if not stale:
        return
    if SortirConfig.for_organizer(order.event.organizer).release_on_cancel:
        _release_and_log(order, CardUsage.objects.filter(pk__in=[u.pk for u in stale]), "position_changed")
        return
    for u in stale:
        _withdraw_grants(order, [u], _not_needed_reason(u))
    tell_apras_by_hand(order, stale, "position_changed")


def _withdraw_grants(order, usages, reason):
    """The card stays taken (release on cancel is off), but a queued or failed grant is not sent any more."""
    from .tasks import GRANTS

    for u in usages:
        if u.state == CardUsage.GRANT_PENDING:
            GRANTS.withdraw(u.pk, CardUsage.VALIDATED, grant_next_attempt=None,
                            on_move=lambda u=u: log_usage(u, "grant_withdrawn", order=order, reason=reason))
        elif u.state == CardUsage.GRANT_FAILED:
            with transaction.atomic():
                if CardUsage.objects.filter(pk=u.pk, state=CardUsage.GRANT_FAILED).update(
                        state=CardUsage.VALIDATED, grant_next_attempt=None, updated=now()):
                    log_usage(u, "grant_withdrawn", order=order, reason=reason)


def _release_and_log(order, qs, reason):
    usages = list(qs.filter(state__in=CardUsage.ACTIVE_STATES).select_related("order_position"))
    # The service key stays (encrypted) until the retention period ends, so a reactivated order can still send its grant.
    # Each row remembers where it was released from: a card taken back resumes there (a sent grant is never queued again).
    for state in {u.state for u in usages}:
        release(CardUsage.objects.filter(pk__in=[u.pk for u in usages if u.state == state], state=state), erase=False,
                released_from=state)
    for u in usages:
        log_usage(u, "released", order=order, reason=reason)
    tell_apras_by_hand(order, usages, reason)


def tell_apras_by_hand(order, usages, reason):
    """
    Tickets whose grant was sent (or may have been) and that are now cancelled, changed or released: APRAS
    offers no cancellation, so the organiser gets one order-log entry (and a notification) per card, once.
    A grant still "being sent" is reported by the task when APRAS's answer is recorded.
    """
    told = None
    for u in usages:
        if u.state == CardUsage.USED or u.grant_id:
            action = "apras_cancel_by_hand"
        elif u.state == CardUsage.GRANT_UNKNOWN:
            action = "apras_check_by_hand"
        else:
            continue
        if told is None:
            told = _already_told(order)
        position = u.order_position.positionid if u.order_position_id else None
        if (position, u.card_last4) in told:
            continue
        told.add((position, u.card_last4))
        log_usage(u, action, order=order, reason=reason, grant_id=u.grant_id)


def _already_told(order):
    import json

    from pretix.base.models import LogEntry

    told = set()
    for raw in LogEntry.objects.filter(
            content_type__app_label="pretixbase", content_type__model="order", object_id=order.pk,
            action_type__in=(LOG_PREFIX + "apras_cancel_by_hand", LOG_PREFIX + "apras_check_by_hand")).values_list("data", flat=True):
        data = json.loads(raw or "{}")
        told.add((data.get("position"), data.get("last4")))
    return told


def reactivate_order(order):
    """
    order_reactivated: take the cards back if still free; otherwise tell the organiser. A reactivated order that
    is paid gets order_paid right after this signal: its cards are taken back there, and their grants queued.
    """
    if order.status == order.STATUS_PAID:
        return
    retake_cards(order, REACTIVATED)


def extend_order(order):
    """order_expiry_changed: an expired order that got a new payment deadline is pending again: take its cards back."""
    if order.status in (order.STATUS_PENDING, order.STATUS_PAID):
        retake_cards(order, EXTENDED)


def _resume_state(usage):
    """Where a released card resumes: a sent grant stays sent, a grant that may have been sent stays "unknown"."""
    if usage.grant_id or usage.released_from == CardUsage.USED:
        return CardUsage.USED
    if usage.released_from in (CardUsage.GRANT_UNKNOWN, CardUsage.GRANT_SENDING):
        return CardUsage.GRANT_UNKNOWN
    return CardUsage.VALIDATED


def retake_cards(order, cause, usages=None):
    """
    The order is alive again (reactivated, paid after its cards were released, or given a new deadline): each
    ticket that still needs a card takes its last released card back, unless the card is now active elsewhere
    for the same event date (the database's unique index decides): then the organiser is told and notified.
    Never two active cards for one ticket, never one card active twice for one event date.
    """
    if usages is None:
        usages = list(order.sortir_usages.filter(state__in=(CardUsage.VALIDATED, CardUsage.RELEASED))
                      .select_related("order_position").order_by("-updated", "-pk"))
    released = [u for u in usages if u.state == CardUsage.RELEASED]
    if not released:
        return
    busy = set(order.sortir_usages.exclude(state=CardUsage.RELEASED).exclude(order_position__isnull=True)
               .values_list("order_position_id", flat=True))
    for u in released:  # most recently released first: a ticket takes back its last card only
        if u.order_position_id in busy or not needs_card(order, u):
            continue
        busy.add(u.order_position_id)
        state = _resume_state(u)
        try:
            with transaction.atomic():
                taken = CardUsage.objects.filter(pk=u.pk, state=CardUsage.RELEASED).update(
                    state=state, released_from="", grant_next_attempt=None, updated=now())
        except IntegrityError:
            log_usage(u, "retake_failed", order=order, cause=cause)
            continue
        if taken:
            u.state = state
            log_usage(u, RETAKE_ACTIONS[cause], order=order)


def next_retry(attempts):
    """Back-off for grant retries: 1, 5, 15, 60 minutes, then every 3 hours."""
    steps = [1, 5, 15, 60]
    return now() + timedelta(minutes=steps[attempts - 1] if attempts - 1 < len(steps) else 180)
