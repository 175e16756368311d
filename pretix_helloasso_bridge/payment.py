"""
One payment provider per ticketing platform ("HelloAsso", "Billetweb", "Weezevent"): the payments and refunds the
bridge imports from it. Buyers can never choose them in the shop.
"""
import json

from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from pretix.base.payment import BasePaymentProvider

from . import config


def payment_info(platform: str, payment) -> str:
    """The ``info`` of an imported payment: its id on the platform (HelloAsso's keeps its historical key too)."""
    info = {"payment_id": payment.remote_id, "means": payment.means, "installment": payment.installment}
    if platform == "helloasso":
        info["helloasso_payment_id"] = payment.remote_id
    return json.dumps(info)


def refund_info(platform: str, refund) -> str:
    info = {"refund_id": refund.remote_id}
    if platform == "helloasso":
        info["helloasso_refund_id"] = refund.remote_id
    return json.dumps(info)


def _remote_id(info: dict, kind: str):
    return info.get(f"{kind}_id") or info.get(f"helloasso_{kind}_id")


class PlatformPayment(BasePaymentProvider):
    #: the identifier of the platform (``providers.Provider.identifier``), also this payment provider's identifier
    platform = None
    is_implicit = True
    is_enabled = True  # only so that imported payments can be confirmed; never offered (is_allowed is False)
    execute_payment_needs_user = False

    @property
    def identifier(self):
        return self.platform

    @property
    def verbose_name(self):
        return config.platform_name(self.platform)

    @property
    def public_name(self):
        return config.platform_name(self.platform)

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
        details = {"payment_id": _remote_id(info, "payment"), "means": info.get("means"), "installment": info.get("installment")}
        if self.platform == "helloasso":
            details["helloasso_payment_id"] = details["payment_id"]
        return details

    def api_refund_details(self, refund):
        details = {"refund_id": _remote_id(refund.info_data, "refund")}
        if self.platform == "helloasso":
            details["helloasso_refund_id"] = details["refund_id"]
        return details

    def payment_control_render(self, request, payment) -> str:
        info = payment.info_data
        parts = [str(_("{platform} payment {id}")).format(platform=self.verbose_name, id=_remote_id(info, "payment") or "?")]
        if info.get("means"):
            parts.append(str(info["means"]))
        if info.get("installment"):
            parts.append(str(_("installment {n}")).format(n=info["installment"]))
        return escape(", ".join(parts))

    def refund_control_render(self, request, refund) -> str:
        remote_id = _remote_id(refund.info_data, "refund") or "?"
        return escape(str(_("{platform} refund {id}")).format(platform=self.verbose_name, id=remote_id))


class HelloAssoPayment(PlatformPayment):
    platform = "helloasso"


class BilletwebPayment(PlatformPayment):
    platform = "billetweb"


class WeezeventPayment(PlatformPayment):
    platform = "weezevent"


PAYMENT_PROVIDERS = [HelloAssoPayment, BilletwebPayment, WeezeventPayment]
