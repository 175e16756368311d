"""The "Invoice Ninja" payment provider: payments reconciled in Invoice Ninja. Buyers can never choose it in the shop."""
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from pretix.base.payment import BasePaymentProvider

IDENTIFIER = "pretix_crm_bridge_invoiceninja"


class InvoiceNinjaPayment(BasePaymentProvider):
    identifier = IDENTIFIER
    verbose_name = _("Invoice Ninja (payments reconciled there)")
    public_name = _("Bank transfer")
    is_enabled = True  # only so that reconciled payments can be confirmed; never offered (is_allowed is False)
    execute_payment_needs_user = False

    @property
    def settings_form_fields(self) -> dict:
        return {}

    def is_allowed(self, request, total=None) -> bool:
        return False

    def order_change_allowed(self, order, request=None) -> bool:
        return False

    def payment_is_valid_session(self, request):
        return False

    def payment_refund_supported(self, payment) -> bool:
        return False

    def payment_partial_refund_supported(self, payment) -> bool:
        return False

    def api_payment_details(self, payment):
        info = payment.info_data
        return {k: info.get(k) for k in ("invoiceninja_payment_id", "invoiceninja_payment_number", "invoice_number", "transaction_reference")}

    def payment_control_render(self, request, payment) -> str:
        info = payment.info_data
        text = str(_("Invoice Ninja payment {number} on invoice {invoice}")).format(
            number=info.get("invoiceninja_payment_number") or info.get("invoiceninja_payment_id") or "?",
            invoice=info.get("invoice_number") or "?")
        if info.get("transaction_reference"):
            text += " (" + str(info["transaction_reference"]) + ")"
        return escape(text)
