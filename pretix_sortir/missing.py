"""
Sortir! tickets that got no card through the checkout: REST API, CSV import, control panel order change,
a buyer's own add-on change. They get a usage in the "no card yet" state, so the organiser sees them, and
the organiser can attach a card afterwards (checked with APRAS like at checkout).

Per event, the organiser decides whether such tickets are refused where pretix lets a plugin refuse them
(the CSV import, a buyer's own order change) or only flagged.
"""
import re
from dataclasses import dataclass

from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import redirect
from django.urls import resolve
from django.utils.crypto import constant_time_compare
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from pretix.base.logentrytypes import OrderLogEntryType, log_entry_types
from pretix.base.settings import settings_hierarkey

from pretix_integrations_core import crypto

from .checkout import show_card
from .holds import CardError, ask_apras, digest, normalize, requires_card
from .models import CardUsage

ORDERS_WITHOUT_CARD = "pretix_sortir_orders_without_card"
REFUSE, ALLOW = "refuse", "allow"
settings_hierarkey.add_default(ORDERS_WITHOUT_CARD, REFUSE, str)

LOG_PREFIX = "pretix_sortir.usage."
#: a usage that holds a card for its date, or waits for one
_COVERED = CardUsage.ACTIVE_STATES + (CardUsage.MISSING,)


def refuses_orders_without_card(event) -> bool:
    return event.settings.get(ORDERS_WITHOUT_CARD, as_type=str) != ALLOW


class AttachError(Exception):
    NOT_MISSING = "not_missing"
    ORDER_CLOSED = "order_closed"
    MESSAGES = {
        NOT_MISSING: _("This ticket already has a Sortir! card, or no longer needs one."),
        ORDER_CLOSED: _("A card can only be attached to a ticket of a pending or paid order."),
    }

    def __init__(self, code, message=None):
        self.code = code
        super().__init__(str(message or self.MESSAGES[code]))


@dataclass
class CheckedCard:
    """A card APRAS accepted: only what the checkout keeps (keyed hash, last 4 digits, encrypted service key)."""
    card_digest: str
    card_last4: str
    service_key_secret: str

    def __str__(self):
        return "•••• " + self.card_last4


def taken_for_date(event, date_key, card_digest, exclude_pk=None) -> bool:
    qs = CardUsage.objects.filter(event=event, date_key=date_key, card_digest=card_digest, state__in=CardUsage.ACTIVE_STATES)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def check_card(event, date_key, raw_card, exclude_pk=None) -> CheckedCard:
    """
    The checkout's checks for a card entered by the organiser (attach, import): 10 digits, not active for
    this event date, accepted by APRAS. Raises CardError with the checkout's messages.
    """
    card = normalize(raw_card)
    card_digest = digest(card)
    if taken_for_date(event, date_key, card_digest, exclude_pk):
        raise CardError(CardError.ALREADY_USED)
    result = ask_apras(event, card)
    return CheckedCard(card_digest=card_digest, card_last4=card[-4:], service_key_secret=crypto.encrypt(result.service_key))


def _cards(usages):
    return sorted(({"position": u.order_position.positionid if u.order_position_id else None, "last4": u.card_last4}
                   for u in usages), key=lambda c: c["position"] or 0)


def flag_positions_without_card(order, positions=None, bound=(), reason="no_checkout", user=None, auth=None):
    """
    Every live Sortir! ticket of ``order`` without a card (and without a "no card yet" usage) gets one.
    ``bound``: ids of positions known to have a card (saves a query on the checkout's path).
    """
    if positions is None:
        positions = list(order.positions.all())
    needing = [op for op in positions if not op.canceled and op.pk not in bound
               and requires_card(order.event, op.item_id, op.variation_id)]
    if not needing:
        return []
    covered = set(CardUsage.objects.filter(order_position__in=needing, state__in=_COVERED).values_list("order_position_id", flat=True))
    created = [
        CardUsage.objects.create(event=order.event, subevent=op.subevent, date_key=op.subevent_id or 0, card_digest="",
                                 card_last4="", state=CardUsage.MISSING, order=order, order_position=op)
        for op in needing if op.pk not in covered
    ]
    for u in created:
        u.order_position = next(op for op in needing if op.pk == u.order_position_id)
    if created:
        order.log_action(LOG_PREFIX + "missing_many", user=user, auth=auth, data={
            "positions": sorted(u.order_position.positionid for u in created), "reason": reason,
        })
    return created


def attach_card(usage, raw_card, user=None, auth=None) -> CardUsage:
    """
    The organiser gives the card of a ticket that has none: checked like at checkout, stored like at
    checkout, the usage becomes "validated"; if the order is already paid its grant is queued.
    Raises CardError (the checkout's messages) or AttachError.
    """
    from .lifecycle import schedule_grants

    order, op = usage.order, usage.order_position
    if usage.state != CardUsage.MISSING or op is None or op.canceled:
        raise AttachError(AttachError.NOT_MISSING)
    if order.status not in (order.STATUS_PENDING, order.STATUS_PAID):
        raise AttachError(AttachError.ORDER_CLOSED)
    if not requires_card(order.event, op.item_id, op.variation_id):
        raise AttachError(AttachError.NOT_MISSING)
    date = op.subevent_id or 0
    checked = check_card(order.event, date, raw_card, exclude_pk=usage.pk)
    queue = order.status == order.STATUS_PAID and not order.testmode
    try:
        with transaction.atomic():
            moved = CardUsage.objects.filter(pk=usage.pk, state=CardUsage.MISSING).update(
                card_digest=checked.card_digest, card_last4=checked.card_last4, service_key_secret=checked.service_key_secret,
                subevent=op.subevent, date_key=date, state=CardUsage.GRANT_PENDING if queue else CardUsage.VALIDATED,
                grant_next_attempt=now() if queue else None, updated=now(),
            )
    except IntegrityError:
        raise CardError(CardError.ALREADY_USED)  # another order took the card meanwhile (the unique index decided)
    if not moved:
        raise AttachError(AttachError.NOT_MISSING)
    usage.refresh_from_db()
    show_card(op, usage)
    cards = _cards([usage])
    order.log_action(LOG_PREFIX + "attached", user=user, auth=auth, data=cards[0])
    if queue:
        order.log_action(LOG_PREFIX + "grant_pending_many", data={"cards": cards})
        schedule_grants(order.event_id, [usage.pk])
    elif order.status == order.STATUS_PAID:
        order.log_action(LOG_PREFIX + "grant_skipped_testmode_many", data={"cards": cards})
    return usage


def create_validated(order, position, checked: CheckedCard, reason, user=None):
    """A card checked before the order existed (CSV import): the usage is "validated" at once, or flagged if taken meanwhile."""
    try:
        with transaction.atomic():
            usage = CardUsage.objects.create(
                event=order.event, subevent=position.subevent, date_key=position.subevent_id or 0,
                card_digest=checked.card_digest, card_last4=checked.card_last4, service_key_secret=checked.service_key_secret,
                state=CardUsage.VALIDATED, order=order, order_position=position,
            )
    except IntegrityError:
        order.log_action(LOG_PREFIX + "attach_failed", user=user, data={"position": position.positionid,
                                                                        "last4": checked.card_last4, "reason": reason})
        return None
    show_card(position, usage)
    order.log_action(LOG_PREFIX + "attached", user=user, data={"position": position.positionid, "last4": checked.card_last4,
                                                               "reason": reason})
    return usage


# -- log display -----------------------------------------------------------------------------------

class SortirMissingLogEntryType(OrderLogEntryType):
    REASONS = {
        "no_checkout": _("created without the checkout"),
        "changed": _("order changed"),
        "import": _("import"),
    }

    def display(self, logentry, data):
        positions = ", ".join(f"#{p}" for p in data.get("positions", []))
        reason = self.REASONS.get(data.get("reason"), data.get("reason") or "")
        return str(self.plain).format(positions=positions, position=data.get("position") or "?", last4=data.get("last4", ""),
                                      reason=reason, order=data.get("order", ""))


log_entry_types.new_from_dict({
    LOG_PREFIX + "missing_many": _("Sortir! tickets without a card ({reason}): {positions}. Attach a card on this page "
                                   "or ask the buyer for it."),
    LOG_PREFIX + "attached": _("Sortir! card •••• {last4} attached to ticket #{position} after a check with APRAS."),
    LOG_PREFIX + "attach_failed": _("Sortir! card •••• {last4} could not be attached to ticket #{position}: it is now used "
                                    "by another order for this date. The ticket has no card yet."),
    LOG_PREFIX + "date_changed": _("Sortir! card •••• {last4} of ticket #{position} follows the ticket to its new date."),
    LOG_PREFIX + "taken_on_new_date": _("Sortir! card •••• {last4} of ticket #{position} is already used for the ticket's new "
                                        "date by another order: the card was released and the ticket has no card yet."),
    LOG_PREFIX + "split_to": _("Sortir! card •••• {last4} of ticket #{position} moved with its ticket to order {order}."),
    LOG_PREFIX + "split_from": _("Sortir! card •••• {last4} of ticket #{position} moved with its ticket from order {order}."),
})(SortirMissingLogEntryType)


# -- a buyer's own order change (add-ons, product change) ------------------------------------------

_CHANGE_VIEWS = ("event.order.change", "event.order.position.change")
_ADDON_FIELD = re.compile(r"^cp_(\d+)_(?:item_(\d+)|variation_(\d+)_(\d+))$")
_ITEMVAR_FIELD = re.compile(r"^op-(\d+)-itemvar$")


def _int(value):
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _new_sortir_tickets(event, positions, post):
    """True if this POST of pretix's order change form would add a Sortir! ticket (add-on or product change)."""
    for key, value in post.items():
        m = _ADDON_FIELD.match(key)
        if m:
            base, item, variation = _int(m[1]), _int(m[2] or m[3]), _int(m[4]) or None
            if base in positions and _int(value) > 0 and requires_card(event, item, variation):
                current = sum(1 for op in positions.values() if op.addon_to_id == base and op.item_id == item
                              and op.variation_id == variation and not op.is_bundled)
                if _int(value) > current:
                    return True
            continue
        m = _ITEMVAR_FIELD.match(key)
        if m and _int(m[1]) in positions:
            op = positions[_int(m[1])]
            item, _sep, variation = str(value).partition("-")
            item, variation = _int(item), _int(variation) or None
            if (item, variation) != (op.item_id, op.variation_id) and requires_card(event, item, variation):
                return True
    return False


def refuse_buyer_change(event, request):
    """
    process_request: pretix offers no hook to refuse a buyer's own order change, so with "refuse" the POST of the
    change form that would add a Sortir! ticket is answered before pretix's view sees it (the order stays as it is).
    """
    if request.method != "POST" or not request.path_info.endswith("/change"):
        return None
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Http404:
        return None
    if match.url_name not in _CHANGE_VIEWS or not refuses_orders_without_card(event):
        return None
    from pretix.base.models import Order

    order = Order.objects.filter(event=event, code=match.kwargs.get("order", "")).first()
    if order is None:
        return None
    positions = {op.pk: op for op in order.positions.all()}
    if match.url_name == "event.order.change":
        allowed = constant_time_compare(order.secret.lower(), str(match.kwargs.get("secret", "")).lower())
    else:
        allowed = any(constant_time_compare(op.web_secret.lower(), str(match.kwargs.get("secret", "")).lower())
                      for op in positions.values() if str(op.positionid) == str(match.kwargs.get("position")))
    if not allowed or not _new_sortir_tickets(event, positions, request.POST):
        return None
    messages.error(request, _("A Sortir! ticket needs a card that is checked when you buy it: it cannot be added to an "
                              "existing order. Please buy it in a new order, or contact the organizer."))
    return redirect(request.get_full_path())
