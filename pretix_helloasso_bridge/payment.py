"""The "HelloAsso" payment provider: payments imported from HelloAsso. Buyers can never choose it in the shop."""
from django.utils.translation import gettext_lazy as _

from pretix.base.payment import BasePaymentProvider


class HelloAssoPayment(BasePaymentProvider):
    identifier = "helloasso"
    verbose_name = _("HelloAsso")
    public_name = _("HelloAsso")
    is_implicit = True
    is_enabled = True  # only so that imported payments can be confirmed; never offered (is_allowed is False)
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

    def api_payment_details(self, payment):
        info = payment.info_data
        return {"helloasso_payment_id": info.get("helloasso_payment_id"), "means": info.get("means"),
                "installment": info.get("installment")}

    def api_refund_details(self, refund):
        return {"helloasso_refund_id": refund.info_data.get("helloasso_refund_id")}

    def payment_control_render(self, request, payment) -> str:
        info = payment.info_data
        parts = [str(_("HelloAsso payment {id}")).format(id=info.get("helloasso_payment_id", "?"))]
        if info.get("means"):
            parts.append(str(info["means"]))
        if info.get("installment"):
            parts.append(str(_("installment {n}")).format(n=info["installment"]))
        from django.utils.html import escape
        return escape(", ".join(parts))

    def refund_control_render(self, request, refund) -> str:
        from django.utils.html import escape
        return escape(str(_("HelloAsso refund {id}")).format(id=refund.info_data.get("helloasso_refund_id", "?")))
