"""
The card number field of each Sortir! ticket, in the checkout's questions step.

The field never keeps the number: once checked and bound to the cart position, its cleaned value
(saved by pretix in the position's ``question_form_data``) is a masked display plus the hold's
reference, e.g. ``"•••••• 7890|<uuid>"``. Re-submitting the masked value keeps the hold.
"""
from django import forms
from django.utils.translation import gettext_lazy as _

from pretix.base.models import CartPosition
from pretix.helpers.http import get_client_ip
from pretix.multidomain.urlreverse import eventreverse

from .holds import CardError, current_hold, hold_card

FIELD_NAME = "pretix_sortir_card"
MASK_PREFIX = "••••••"


def stored_value(usage) -> str:
    return f"{MASK_PREFIX} {usage.card_last4}|{usage.reference}"


def reference_from_stored(value):
    if isinstance(value, str) and "|" in value:
        return value.rsplit("|", 1)[1]
    return None


class CardNumberInput(forms.TextInput):
    def format_value(self, value):
        if isinstance(value, str) and "|" in value:
            return value.split("|", 1)[0]
        return super().format_value(value)


class RequestBinding:
    """A no-op validator that hands the request to the field (pretix's override signal is the only door)."""

    def __init__(self, request):
        self.request = request

    def __call__(self, value):
        return None


class SortirCardField(forms.CharField):
    widget = CardNumberInput

    def __init__(self, *args, event, position, **kwargs):
        self.event = event
        self.position = position
        kwargs.setdefault("label", _("Sortir! card number"))
        kwargs.setdefault("help_text", _("The 10 digits of the KorriGo card with Sortir! rights of the person this ticket is for."))
        kwargs.setdefault("max_length", 40)
        super().__init__(*args, **kwargs)
        self.widget.attrs.update({
            "autocomplete": "off", "inputmode": "numeric", "spellcheck": "false",
            "data-sortir-card": eventreverse(event, "plugins:pretix_sortir:check"),
            "data-sortir-position": str(position.pk),
            "data-sortir-checking": _("Checking the card with APRAS…"),
            "data-sortir-failed": _("The card could not be checked now. It will be checked again when you continue."),
        })

    def _client_ip(self):
        for v in self.validators:
            if isinstance(v, RequestBinding):
                return get_client_ip(v.request)
        return None

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return value
        if value.startswith(MASK_PREFIX):
            usage = current_hold(self.position)
            if usage is None or not value.endswith(usage.card_last4):
                raise forms.ValidationError(_("Please enter the Sortir! card number again."))
            return stored_value(usage)
        try:
            usage = hold_card(self.event, self.position, value, client_ip=self._client_ip())
        except CardError as e:
            raise forms.ValidationError(str(e), code=e.code)
        return stored_value(usage)


def card_field_for(event, position):
    if not isinstance(position, CartPosition):
        return None  # after the order is placed the card cannot be changed by the buyer
    return SortirCardField(event=event, position=position, required=True)
