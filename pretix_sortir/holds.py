"""
Checking a card and binding it to one cart position (a *hold*), with the abuse and fault rules.

The same code serves the live check in the page and the authoritative check when the questions step
is submitted, so a card checked live is not sent to APRAS a second time.
"""
import logging
import re

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _

from pretix_integrations_core import crypto
from pretix_integrations_core.breaker import increment, shared_cache
from pretix_integrations_core.errors import ExternalServiceError, ServiceConfigurationError, ServiceNotFound

from .config import SortirConfig, apras_client
from .models import CardUsage, SortirProduct

logger = logging.getLogger(__name__)

CARD_RE = re.compile(r"^\d{10}$")
DIGEST_PURPOSE = "sortir-card"
UNKNOWN_TTL = 300
FAILURE_WINDOW = 300
MAX_FAILURES = 10


class CardError(Exception):
    FORMAT = "format"
    UNKNOWN = "unknown"
    ALREADY_USED = "already_used"
    DUPLICATE_IN_CART = "duplicate_in_cart"
    UNAVAILABLE = "unavailable"
    TOO_MANY_ATTEMPTS = "too_many_attempts"

    MESSAGES = {
        FORMAT: _("A Sortir! card number has 10 digits."),
        UNKNOWN: _("This Sortir! card is unknown or not eligible. Please check the number."),
        ALREADY_USED: _("This Sortir! card has already been used for this event."),
        DUPLICATE_IN_CART: _("This Sortir! card is already used for another ticket in your cart. Each ticket needs its own card."),
        UNAVAILABLE: _("The Sortir! card check is temporarily unavailable. Please try again in a few minutes."),
        TOO_MANY_ATTEMPTS: _("Too many unsuccessful attempts. Please wait a few minutes before trying again."),
    }

    def __init__(self, code):
        self.code = code
        super().__init__(str(self.MESSAGES[code]))


def normalize(raw) -> str:
    card = re.sub(r"[\s\-]", "", str(raw or ""))
    if not CARD_RE.match(card):
        raise CardError(CardError.FORMAT)
    return card


def digest(card: str) -> str:
    return crypto.keyed_digest(card, DIGEST_PURPOSE)


def _event_flags(event):
    """{(item_id, variation_id or None)} for the event, loaded once per event object (i.e. per request)."""
    flags = getattr(event, "_sortir_flags", None)
    if flags is None:
        flags = event._sortir_flags = set(SortirProduct.objects.filter(event=event).values_list("item_id", "variation_id"))
    return flags


def requires_card(event, item_id, variation_id) -> bool:
    flags = _event_flags(event)
    return (item_id, None) in flags or (variation_id is not None and (item_id, variation_id) in flags)


def date_key(position) -> int:
    return position.subevent_id or 0


# -- abuse controls (cache-based; work on pretix's dummy cache through the per-process fallback) -------

def _failure_key(client_ip):
    # Not even the cache keeps the address itself.
    return f"pretix_sortir:failures:{crypto.keyed_digest(client_ip, 'sortir-rate-limit')}"


def too_many_failures(client_ip) -> bool:
    return bool(client_ip) and (shared_cache().get(_failure_key(client_ip)) or 0) >= MAX_FAILURES


def count_failure(client_ip):
    if client_ip:
        increment(shared_cache(), _failure_key(client_ip), FAILURE_WINDOW)


def _unknown_key(organizer_id, card_digest):
    return f"pretix_sortir:unknown:{organizer_id}:{card_digest}"


# -- holds ---------------------------------------------------------------------------------------------

def _conflicting(event, position, card_digest):
    return CardUsage.objects.filter(
        event=event, date_key=date_key(position), card_digest=card_digest, state__in=CardUsage.ACTIVE_STATES,
    ).exclude(cart_position=position).select_related("cart_position").first()


#: a card bound to a cart position, checked (HELD) or not checked yet because APRAS could not answer (UNCHECKED)
HOLD_STATES = (CardUsage.HELD, CardUsage.UNCHECKED)


def _is_stale(usage) -> bool:
    """A hold whose cart is gone or expired frees its card."""
    if usage.state not in HOLD_STATES or usage.order_id:
        return False
    cp = usage.cart_position
    return cp is None or (cp.expires is not None and cp.expires < now())


def current_hold(position):
    return CardUsage.objects.filter(cart_position=position, state__in=HOLD_STATES).first()


def release(queryset, erase=True, **fields):
    """
    Free the cards of these usages; with ``erase`` their secrets are erased at once. ``fields`` are set as well.
    A card number kept for a later check (degraded mode) is always erased: a released card is never checked.
    """
    if erase:
        fields.update(service_key_secret="", holder_name_secret="")
    return queryset.update(state=CardUsage.RELEASED, updated=now(), card_number_secret="", **fields)


def release_stale_holds():
    """
    Holds (checked or unchecked) whose cart position is gone or expired free their card (abandoned carts).

    The candidates are read first; the update then re-checks the state and that no order has it on the row
    itself, so a hold that became an order's card in the meantime (a checkout that won the race) is left alone.
    """
    stale = list(CardUsage.objects.filter(state__in=HOLD_STATES, order__isnull=True).filter(
        Q(cart_position__isnull=True) | Q(cart_position__expires__lt=now())).values_list("pk", flat=True)[:5000])
    if not stale:
        return 0
    return release(CardUsage.objects.filter(pk__in=stale, state__in=HOLD_STATES, order__isnull=True))


def ask_apras(event, card):
    """
    APRAS's answer for one (normalized) card, or the checkout's CardError: UNKNOWN when APRAS does not know it,
    UNAVAILABLE when it cannot answer (the service error is the CardError's ``__cause__``; a refused token or a
    wrong address also tells the organiser). Every door that checks a card (checkout, attach, import) asks here.
    """
    try:
        return apras_client(event.organizer).check_card(card)
    except ServiceNotFound:
        raise CardError(CardError.UNKNOWN) from None
    except ServiceConfigurationError as e:
        from .notifications import report_configuration_problem
        report_configuration_problem(event, e)
        raise CardError(CardError.UNAVAILABLE) from None
    except ExternalServiceError as e:
        logger.warning("Sortir! card check failed for event %s: %s", event.pk, e)
        raise CardError(CardError.UNAVAILABLE) from e


def hold_card(event, position, raw_card, client_ip=None) -> CardUsage:
    """Check ``raw_card`` and bind it to ``position`` (a CartPosition). Raises CardError."""
    card = normalize(raw_card)
    card_digest = digest(card)
    existing = current_hold(position)
    if existing and existing.card_digest == card_digest and existing.state == CardUsage.HELD:
        return existing  # already checked: no second APRAS call

    if too_many_failures(client_ip):
        raise CardError(CardError.TOO_MANY_ATTEMPTS)

    other = _conflicting(event, position, card_digest)
    if other is not None:
        if _is_stale(other) and release(CardUsage.objects.filter(pk=other.pk, state__in=HOLD_STATES, order__isnull=True)):
            pass  # an abandoned cart's hold: the card is free again (unless its order was placed meanwhile)
        elif other.state in HOLD_STATES and other.cart_id and other.cart_id == position.cart_id:
            raise CardError(CardError.DUPLICATE_IN_CART)
        else:
            count_failure(client_ip)
            raise CardError(CardError.ALREADY_USED)

    cache = shared_cache()
    organizer = event.organizer
    if cache.get(_unknown_key(organizer.pk, card_digest)):
        count_failure(client_ip)
        raise CardError(CardError.UNKNOWN)

    try:
        result = ask_apras(event, card)
    except CardError as e:
        if e.code == CardError.UNKNOWN:
            cache.set(_unknown_key(organizer.pk, card_digest), 1, timeout=UNKNOWN_TTL)
            count_failure(client_ip)
            raise
        cause = e.__cause__
        if not (cause is not None and cause.transient and SortirConfig.for_organizer(organizer).accept_unchecked):
            raise
        # Degraded mode (the organiser's choice): APRAS cannot answer, the card is held unchecked and checked
        # in the background; the order waits for the organiser's approval until APRAS has accepted it.
        if existing and existing.card_digest == card_digest:
            return existing
        return _create_hold(event, position, card, card_digest, existing, state=CardUsage.UNCHECKED,
                            card_number_secret=crypto.encrypt(card))

    holder = " ".join(p for p in (result.first_name, result.last_name) if p)
    return _create_hold(event, position, card, card_digest, existing, state=CardUsage.HELD,
                        service_key_secret=crypto.encrypt(result.service_key),
                        holder_name_secret=crypto.encrypt(holder) if holder else "")


def _create_hold(event, position, card, card_digest, existing, **fields):
    try:
        with transaction.atomic():
            if existing:
                release(CardUsage.objects.filter(pk=existing.pk, state=CardUsage.HELD))  # a corrected number frees the previous card at once
            return CardUsage.objects.create(
                event=event, subevent=position.subevent, date_key=date_key(position),
                card_digest=card_digest, card_last4=card[-4:],
                cart_position=position, cart_id=position.cart_id, **fields,
            )
    except IntegrityError:
        # Another buyer won the race for the same card (the unique index decided).
        other = _conflicting(event, position, card_digest)
        if other is not None and other.cart_id and other.cart_id == position.cart_id:
            raise CardError(CardError.DUPLICATE_IN_CART)
        raise CardError(CardError.ALREADY_USED)


def holder_name(usage):
    if not usage.holder_name_secret:
        return ""
    try:
        return crypto.decrypt(usage.holder_name_secret)
    except crypto.SecretError:
        return ""
