"""
Invoice Ninja → pretix: a payment recorded in Invoice Ninja (a bank transfer reconciled there) marks the pending pretix
order paid.

Invoice Ninja signs nothing (``crm-apis.md`` §3.7): the organiser's URL carries an unguessable secret
(:mod:`.webhook_secrets`), and the payload is only a hint. The worker re-fetches the payment with the organiser's own
API token, then each invoice it pays; the invoice number leads to the pretix order (a pretix invoice number, or the
order's full code, as the bridge numbers its own invoices). The order must be pending in an event of this organiser
that uses the bridge, and the amount and currency must match what is still open; then a payment of the "Invoice Ninja"
provider is confirmed. Anything else is refused and logged (on the order when there is one, else on the organiser),
and listed on the CRM connections page. Payments the bridge recorded itself (its idempotency key and reference) are
ignored, so nothing loops; a payment already confirmed is never confirmed twice.
"""
import json
import logging
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils.translation import gettext as _
from django_scopes import scope, scopes_disabled

from pretix.base.models import Event, Invoice, LogEntry, Order, OrderPayment, Organizer, Quota
from pretix.celery_app import app

from pretix_integrations_core.errors import ExternalServiceError, ServiceRateLimited, ServiceTimeout, ServiceUnavailable
from pretix_integrations_core.inbound import InboundWebhookView

from . import config
from .payment import IDENTIFIER as PROVIDER
from .webhook_secrets import path_secret

logger = logging.getLogger(__name__)

ACCEPTED = "pretix_crm_bridge.invoiceninja.payment.accepted"
REFUSED = "pretix_crm_bridge.invoiceninja.payment.refused"
UNMATCHED = "pretix_crm_bridge.invoiceninja.payment.unmatched"
LOG_TYPES = (ACCEPTED, REFUSED, UNMATCHED)

#: Invoice Ninja's currency ids (its CurrenciesSeeder); a payment in a currency not listed here is refused
CURRENCIES = {
    1: "USD", 2: "GBP", 3: "EUR", 4: "ZAR", 5: "DKK", 6: "ILS", 7: "SEK", 8: "KES", 9: "CAD", 10: "PHP", 11: "INR", 12: "AUD",
    13: "SGD", 14: "NOK", 15: "NZD", 16: "VND", 17: "CHF", 18: "GTQ", 19: "MYR", 20: "BRL", 21: "THB", 22: "NGN", 23: "ARS",
    24: "BDT", 25: "AED", 26: "HKD", 27: "IDR", 28: "MXN", 29: "EGP", 30: "COP", 31: "XOF", 32: "CNY", 33: "RWF", 34: "TZS",
    35: "ANG", 36: "TTD", 37: "XCD", 38: "GHS", 39: "BGN", 40: "AWG", 41: "TRY", 42: "RON", 43: "HRK", 44: "SAR", 45: "JPY",
    46: "MVR", 47: "CRC", 48: "PKR", 49: "PLN", 50: "LKR", 51: "CZK", 52: "UYU", 53: "NAD", 54: "TND", 55: "RUB", 56: "MZN",
    57: "OMR", 58: "UAH", 59: "MOP", 60: "TWD", 61: "DOP", 62: "CLP", 63: "ISK", 64: "PGK", 65: "JOD", 66: "MMK", 67: "PEN",
    68: "BWP", 69: "HUF", 70: "UGX", 71: "BBD", 72: "BND", 73: "GEL", 74: "QAR", 75: "HNL", 76: "SRD", 77: "BHD", 78: "VES",
    79: "KRW", 80: "MAD", 81: "JMD", 82: "AOA", 83: "HTG", 84: "ZMW", 85: "NPR", 86: "XPF", 87: "MUR", 88: "CVE", 89: "KWD",
    90: "DZD",
}

#: Invoice Ninja's webhook event "create_payment" (§3.7)
EVENT_CREATE_PAYMENT = "4"
#: Invoice Ninja payment status "completed"; pending, cancelled, failed and refunded payments pay nothing
STATUS_COMPLETED = "4"


class InvoiceNinjaWebhookView(InboundWebhookView):
    service = "crm-invoiceninja"

    def get_connection(self, request, **kwargs):
        with scopes_disabled():
            organizer = Organizer.objects.filter(slug=kwargs.get("organizer_slug") or "").first()
        if not organizer or "pretix_crm_bridge" not in organizer.get_plugins() or not config.invoiceninja_configured(organizer):
            return None
        return f"org-{organizer.pk}", path_secret(organizer, "invoiceninja"), organizer.pk

    def enqueue(self, organizer_id, payload, delivery_id):
        payment_id = payload.get("id") if isinstance(payload, dict) else None
        if isinstance(payment_id, str) and payment_id.isalnum() and len(payment_id) <= 64:
            reconcile_payment.apply_async(kwargs={"organizer_id": organizer_id, "payment_id": payment_id})


@app.task(bind=True, acks_late=True, max_retries=5)
def reconcile_payment(self, organizer_id, payment_id):
    with scopes_disabled():
        organizer = Organizer.objects.filter(pk=organizer_id).first()
    if organizer is None:
        return
    with scope(organizer=organizer):
        try:
            Reconciliation(organizer).run(payment_id)
        except (ServiceTimeout, ServiceUnavailable, ServiceRateLimited) as e:
            if self.request.retries < self.max_retries and not app.conf.task_always_eager:
                raise self.retry(countdown=60 * 2 ** self.request.retries)
            _log_unmatched(organizer, {"payment_id": payment_id}, _("Invoice Ninja could not be asked about the payment: {error}").format(error=e))
        except ExternalServiceError as e:
            _log_unmatched(organizer, {"payment_id": payment_id}, _("Invoice Ninja did not give the payment: {error}").format(error=e))


def _log_unmatched(organizer, data, reason):
    logger.info("Invoice Ninja payment %s not applied for organizer %s: %s", data.get("payment_id"), organizer.pk, reason)
    organizer.log_action(UNMATCHED, data={**data, "reason": str(reason)})


def is_own_payment(payment) -> bool:
    """Payments the bridge recorded itself (sync.py): they mirror pretix payments and must never come back."""
    return str(payment.get("idempotency_key") or "").startswith("pretix:") or \
        str(payment.get("transaction_reference") or "").startswith("pretix ")


def _decimal(value):
    try:
        return Decimal(str(value if value is not None else "0")).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


class Reconciliation:
    def __init__(self, organizer):
        self.organizer = organizer
        self.client = config.invoiceninja_client(organizer)

    def run(self, payment_id):
        payment = self.client.get_payment(payment_id)
        if not isinstance(payment, dict) or payment.get("id") != payment_id:
            return _log_unmatched(self.organizer, {"payment_id": payment_id}, _("Invoice Ninja answered with something that is not this payment."))
        if is_own_payment(payment):
            logger.debug("Invoice Ninja payment %s was recorded by the bridge: ignored", payment_id)
            return None
        base = {"payment_id": payment_id, "payment_number": str(payment.get("number") or ""),
                "transaction_reference": str(payment.get("transaction_reference") or "")}
        if payment.get("is_deleted") or str(payment.get("status_id")) != STATUS_COMPLETED:
            return _log_unmatched(self.organizer, base, _("The payment is not completed in Invoice Ninja, or was deleted there."))
        lines = [line for line in payment.get("paymentables") or [] if isinstance(line, dict) and line.get("invoice_id")]
        if not lines:
            return _log_unmatched(self.organizer, base, _("The payment is not applied to an invoice in Invoice Ninja."))
        currency = self.currency(payment)
        for line in lines:
            amount = (_decimal(line.get("amount")) or Decimal("0")) - (_decimal(line.get("refunded")) or Decimal("0"))
            invoice = self.client.get_invoice(line["invoice_id"])
            self.apply(payment, base, invoice, amount, currency)

    def currency(self, payment):
        cid = str(payment.get("currency_id") or "")
        if not cid.isdigit():
            client = self.client.get_client(payment.get("client_id")) if payment.get("client_id") else {}
            cid = str(((client or {}).get("settings") or {}).get("currency_id") or "")
        return CURRENCIES.get(int(cid)) if cid.isdigit() else None

    def find_order(self, number):
        """(order, pretix invoice or None) for an Invoice Ninja invoice number, among this organiser's events only."""
        if not number:
            return None, None
        inv = Invoice.objects.filter(event__organizer=self.organizer, full_invoice_no=number).select_related("order").first()
        if inv is not None:
            return inv.order, inv
        slug, sep, code = number.rpartition("-")
        if sep and slug and code:
            event = Event.objects.filter(organizer=self.organizer, slug__iexact=slug).first()
            if event is not None:
                return Order.objects.filter(event=event, code=code.upper()).first(), None
        return None, None

    def apply(self, payment, base, invoice, amount, currency):
        number = str(invoice.get("number") or "")
        data = {**base, "invoice_number": number, "amount": str(amount), "currency": currency or "?"}
        order, pretix_invoice = self.find_order(number)
        if order is None or "pretix_crm_bridge" not in order.event.get_plugins():
            return _log_unmatched(self.organizer, data, _("No pretix order of this organizer has the invoice number {number}.").format(number=number or "?"))
        if pretix_invoice is not None and pretix_invoice.is_cancellation:
            return self.refuse(order, data, _("The invoice {number} is a cancellation in pretix.").format(number=number))
        with transaction.atomic():
            order = Order.objects.select_for_update().get(pk=order.pk)
            if any(p.info_data.get("invoiceninja_payment_id") == base["payment_id"] and p.info_data.get("invoice_number") == number
                   for p in order.payments.filter(provider=PROVIDER)):
                return None  # delivered again (or an update of the same payment): applied once already
            if order.status == Order.STATUS_PAID:
                return self.refuse(order, data, _("The order is already paid."))
            if order.status != Order.STATUS_PENDING:
                return self.refuse(order, data, _("The order is not pending (it is {status}).").format(status=order.get_status_display()))
            if currency != order.event.currency:
                return self.refuse(order, data, _("The payment is in {currency}, the order in {expected}.").format(
                    currency=currency or _("an unknown currency"), expected=order.event.currency))
            open_amount = order.pending_sum
            if amount != open_amount:
                return self.refuse(order, data, _("The payment is {amount} {currency}, the order still owes {open} {currency}.").format(
                    amount=amount, open=open_amount, currency=order.event.currency))
            p = order.payments.create(provider=PROVIDER, amount=amount, state=OrderPayment.PAYMENT_STATE_CREATED, info=json.dumps({
                "invoiceninja_payment_id": base["payment_id"], "invoiceninja_payment_number": base["payment_number"],
                "invoice_number": number, "transaction_reference": base["transaction_reference"]}))
            try:
                p.confirm(ignore_date=True)
            except Quota.QuotaExceededException:
                p.fail(info={"reason": "quota"}, log_data={"reason": "quota"})
                return self.refuse(order, data, _("The order cannot be paid: a product is sold out."))
            order.log_action(ACCEPTED, data=data)
        return p

    def refuse(self, order, data, reason):
        logger.info("Invoice Ninja payment %s refused for order %s: %s", data.get("payment_id"), order.code, reason)
        order.log_action(REFUSED, data={**data, "reason": str(reason)})


def recent_payment_log(organizer, limit=20):
    """The latest payments Invoice Ninja reported, applied or not, for the connections page."""
    with scopes_disabled():
        return list(LogEntry.objects.filter(organizer_id=organizer.pk, action_type__in=LOG_TYPES).select_related("event")
                    .order_by("-datetime", "-pk")[:limit])
