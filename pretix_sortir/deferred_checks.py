"""
Degraded mode: cards that APRAS could not check at checkout, held back with pretix's own order approval.

When the organiser allows it (``SortirConfig.accept_unchecked``) and APRAS cannot answer (timeout, 5xx,
breaker open), the buyer's card is held *unchecked*: its number is kept encrypted with the core's secrets
helper (``card_number_secret``), never in clear. The order is created like an order of a product that needs
approval (``Order.require_approval``): no payment is requested, pretix sends its "awaiting approval" email,
and the order neither expires nor can be paid. In the background the card is checked as soon as APRAS
answers again (a Celery task, after the order's commit and from the periodic task):

- accepted: the card becomes validated and, if nothing else in the order needs the organiser's approval,
  the order is approved with pretix's ``approve_order`` (a free order is paid at once, its grant follows);
- refused: the card is released, the order stays in approval, the order log says why and the organiser gets
  the "Sortir! card refused" notification; they deny or approve it in pretix's order page.

How the order is put into approval: ``validate_order`` (which pretix sends just before it creates the order
in the same call) remembers which cart positions have an unchecked card; the ``post_save`` of the new
:class:`Order` then sets ``require_approval`` before pretix creates payments or sends the confirmation.
"""
import contextvars
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils.html import format_html
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _
from django_scopes import scope, scopes_disabled

from pretix.base.logentrytypes import OrderLogEntryType, log_entry_types
from pretix.base.services.orders import OrderError, approve_order
from pretix.celery_app import app

from pretix_integrations_core import crypto
from pretix_integrations_core.errors import ExternalServiceError, ServiceConfigurationError, ServiceNotFound

from .models import CardUsage

logger = logging.getLogger(__name__)

LOG_PREFIX = "pretix_sortir.usage."
ACTION_HELD = LOG_PREFIX + "held_for_check_many"
ACTION_ACCEPTED = LOG_PREFIX + "deferred_accepted"
ACTION_REFUSED = LOG_PREFIX + "deferred_refused"

#: reasons of a refusal shown in the order log (stored as codes, translated when displayed)
REFUSED_UNKNOWN, REFUSED_UNREADABLE = "unknown", "unreadable"
REASONS = {
    REFUSED_UNKNOWN: _("APRAS does not know this card or it has no Sortir! rights"),
    REFUSED_UNREADABLE: _("the stored card number could not be read"),
}


# -- putting the order into approval ------------------------------------------------------------------

@dataclass(frozen=True)
class _Expected:
    event_id: int
    email: str
    cart_position_ids: tuple


_expected = contextvars.ContextVar("pretix_sortir_expected_unchecked_order", default=None)


def expect_order(event, email=None, cart_position_ids=()):
    """validate_order: the order pretix is about to create from these cart positions has unchecked cards."""
    _expected.set(_Expected(event.pk, email or None, tuple(cart_position_ids)) if event and cart_position_ids else None)


def order_created(order):
    """post_save of a new Order: hold it for approval if it is the one announced by validate_order."""
    expected = _expected.get()
    if expected is None or order.event_id != expected.event_id or (order.email or None) != expected.email:
        return
    _expected.set(None)
    # The cart positions still exist at this point (pretix turns them into order positions afterwards).
    if not CardUsage.objects.filter(cart_position_id__in=expected.cart_position_ids, state=CardUsage.UNCHECKED).exists():
        return
    order.require_approval = True
    type(order).objects.filter(pk=order.pk).update(require_approval=True)
    order._transaction_key_reset()


def order_placed_unchecked(order, usages):
    """bind_order: log which cards wait for APRAS and check them right after the commit (with a worker)."""
    from .lifecycle import _cards

    order.log_action(ACTION_HELD, data={"cards": _cards(usages)})
    if getattr(settings, "HAS_CELERY", False):
        ids = [u.pk for u in usages]
        transaction.on_commit(lambda: check_unchecked_cards.apply_async(kwargs={"usage_ids": ids}))


def buyer_notice(order):
    """On the buyer's order page while cards wait for APRAS."""
    if not (order.require_approval and order.status == order.STATUS_PENDING):
        return ""
    last4 = list(order.sortir_usages.filter(state=CardUsage.UNCHECKED).order_by("pk").values_list("card_last4", flat=True))
    if not last4:
        return ""
    return format_html('<div class="alert alert-info">{}</div>', _(
        "Your Sortir! cards ({cards}) could not be checked with APRAS when you ordered. They are checked as soon as "
        "APRAS answers again; your order is confirmed once they are accepted."
    ).format(cards=", ".join(f"•••• {x}" for x in last4)))


# -- the background check -----------------------------------------------------------------------------

@app.task()
def check_unchecked_cards(usage_ids=None):
    """Check the unchecked cards of placed orders (all of them, or these). One failing row does not stop the others."""
    with scopes_disabled():
        qs = CardUsage.objects.filter(state=CardUsage.UNCHECKED, order__status__in=("n", "p"))  # pending or paid orders
        if usage_ids is not None:
            qs = qs.filter(pk__in=usage_ids)
        todo = list(qs.select_related("event__organizer").order_by("pk")[:200])
    for usage in todo:
        if "pretix_sortir" not in usage.event.get_plugins():
            continue
        try:
            with scope(organizer=usage.event.organizer):
                check_usage(usage.pk)
        except Exception:
            logger.exception("Deferred Sortir! check of card usage %s failed", usage.pk)


def check_usage(usage_pk):
    """Check one unchecked card with APRAS; leave it for later if APRAS still cannot answer."""
    from .config import apras_client
    from .notifications import report_configuration_problem

    usage = (CardUsage.objects.select_related("order", "order_position", "event__organizer")
             .filter(pk=usage_pk, state=CardUsage.UNCHECKED, order__isnull=False).first())
    if usage is None:
        return None
    try:
        card = crypto.decrypt(usage.card_number_secret)
    except crypto.SecretError:
        return _refuse(usage, REFUSED_UNREADABLE)
    try:
        result = apras_client(usage.event.organizer).check_card(card)
    except ServiceNotFound:
        return _refuse(usage, REFUSED_UNKNOWN)
    except ServiceConfigurationError as e:
        report_configuration_problem(usage.event, e)
        return None
    except ExternalServiceError as e:
        logger.info("Deferred Sortir! check of card usage %s: APRAS still unavailable (%s)", usage.pk, e.kind)
        return None
    return _accept(usage, result)


def _accept(usage, result):
    from .lifecycle import log_usage, mark_paid

    with transaction.atomic():
        moved = CardUsage.objects.filter(pk=usage.pk, state=CardUsage.UNCHECKED).update(
            state=CardUsage.VALIDATED, service_key_secret=crypto.encrypt(result.service_key), card_number_secret="",
            updated=now())
        if not moved:
            return None
        log_usage(usage, "deferred_accepted")
    order = usage.order
    order.refresh_from_db()
    if order.sortir_usages.filter(state=CardUsage.UNCHECKED).exists():
        return CardUsage.VALIDATED  # the order waits for its other cards
    if order.status == order.STATUS_PENDING and order.require_approval and not _needs_approval_anyway(order):
        try:
            approve_order(order, send_mail=True)
        except OrderError as e:
            logger.warning("Order %s could not be approved after its Sortir! cards were accepted: %s", order.code, e)
    elif order.status == order.STATUS_PAID:
        mark_paid(order)  # approved by hand meanwhile: the grants follow now
    return CardUsage.VALIDATED


def _needs_approval_anyway(order):
    """Products (or tax rules) that require approval by themselves leave the decision to the organiser."""
    address = getattr(order, "invoice_address", None)  # None when the order has no invoice address
    positions = order.positions.select_related("item", "variation", "item__tax_rule")
    return any(p.requires_approval(invoice_address=address) for p in positions)


def _refuse(usage, reason):
    from .lifecycle import log_usage

    with transaction.atomic():
        moved = CardUsage.objects.filter(pk=usage.pk, state=CardUsage.UNCHECKED).update(
            state=CardUsage.RELEASED, card_number_secret="", service_key_secret="", holder_name_secret="", updated=now())
        if not moved:
            return None
        # This log entry is what pretix's notifications react to (AprasCardRefused).
        log_usage(usage, "deferred_refused", reason=reason)
    return CardUsage.RELEASED


# -- order log ------------------------------------------------------------------------------------------

class DeferredCheckLogEntryType(OrderLogEntryType):
    def display(self, logentry, data):
        cards = ", ".join(str(_("ticket #{position}: •••• {last4}")).format(**c) for c in data.get("cards", []))
        reason = data.get("reason", "")
        return str(self.plain).format(position=data.get("position") or "?", last4=data.get("last4", ""), cards=cards,
                                      reason=REASONS.get(reason, reason))


log_entry_types.new_from_dict({
    ACTION_HELD: _("APRAS could not be reached: the Sortir! cards ({cards}) will be checked as soon as it answers. "
                   "The order waits for approval until then."),
    ACTION_ACCEPTED: _("Sortir! card •••• {last4} (ticket #{position}) checked later: APRAS accepted it."),
    ACTION_REFUSED: _("Sortir! card •••• {last4} (ticket #{position}) checked later: APRAS refused it ({reason}). "
                      "The card is released and the order waits for your approval."),
})(DeferredCheckLogEntryType)
