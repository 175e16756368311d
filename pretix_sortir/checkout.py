"""
The card number field of each Sortir! ticket, in the checkout's questions step.

The field never keeps the number: once checked and bound to the cart position, its cleaned value
(saved by pretix in the position's ``question_form_data`` and shown by pretix on the review page and the
order pages) is only the masked card, e.g. ``"•••••• 7890"``. Re-submitting the masked value keeps the hold.

The hold's reference is not part of what pretix displays: it is written to the position's own meta_info
(``{"pretix_sortir": {"reference": ...}}``) just before the order is created, and pretix copies it to the
order position. Positions saved by older versions carry it in the displayed value (``"•••••• 7890|<uuid>"``):
:func:`reference_of` still reads that format.
"""
import json

from django import forms
from django.contrib import messages
from django.utils.translation import gettext_lazy as _

from pretix.base.models import CartPosition
from pretix.helpers.http import get_client_ip
from pretix.multidomain.urlreverse import eventreverse

from .holds import CardError, current_hold, hold_card
from .models import CardUsage

FIELD_NAME = "pretix_sortir_card"
MASK_PREFIX = "••••••"


#: the position's meta_info key that carries the hold's reference from the cart to the order
META_KEY = "pretix_sortir"


def stored_value(usage) -> str:
    """What pretix stores and displays as the answer: the masked card, never the hold's reference."""
    return f"{MASK_PREFIX} {usage.card_last4}"


def display_value(value):
    """The displayable part of a stored answer (older versions appended ``|<reference>``)."""
    if isinstance(value, str) and "|" in value:
        return value.split("|", 1)[0]
    return value


def reference_from_stored(value):
    """The reference in an answer stored by older versions (``"•••••• 7890|<uuid>"``), else None."""
    if isinstance(value, str) and "|" in value:
        return value.rsplit("|", 1)[1]
    return None


def reference_of(position):
    """The hold's reference of a cart or order position: its meta_info, else the older answer format."""
    data = position.meta_info_data or {}
    ref = (data.get(META_KEY) or {}).get("reference")
    return ref or reference_from_stored(data.get("question_form_data", {}).get(FIELD_NAME))


def with_reference(meta_info: dict, reference) -> dict:
    """meta_info carrying ``reference``, with the displayed answer reduced to the masked card."""
    meta_info = dict(meta_info or {})
    meta_info[META_KEY] = {**(meta_info.get(META_KEY) or {}), "reference": str(reference)}
    answers = meta_info.get("question_form_data")
    if isinstance(answers, dict) and FIELD_NAME in answers:
        meta_info["question_form_data"] = {**answers, FIELD_NAME: display_value(answers[FIELD_NAME])}
    return meta_info


def show_card(position, usage):
    """A card attached after the checkout (order page, API, import) is listed on the order pages like a checkout card."""
    data = position.meta_info_data or {}
    data.setdefault("question_form_data", {})[FIELD_NAME] = stored_value(usage)
    position.meta_info = json.dumps(data)
    # A plain update: displaying the card is no change of the order (pretix's change manager compares last_modified).
    type(position)._base_manager.filter(pk=position.pk).update(meta_info=position.meta_info)


class CardNumberInput(forms.TextInput):
    def format_value(self, value):
        return super().format_value(display_value(value))


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

    def _request(self):
        for v in self.validators:
            if isinstance(v, RequestBinding):
                return v.request
        return None

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return value
        if value.startswith(MASK_PREFIX):
            usage = current_hold(self.position)
            if usage is None or not display_value(value).endswith(usage.card_last4):
                raise forms.ValidationError(_("Please enter the Sortir! card number again."))
            return stored_value(usage)
        try:
            usage = hold_card(self.event, self.position, value, client_ip=self._client_ip())
        except CardError as e:
            raise forms.ValidationError(str(e), code=e.code)
        if usage.state == CardUsage.UNCHECKED:
            request = self._request()
            if request is not None:
                messages.warning(request, unchecked_message(usage))
        return stored_value(usage)


def unchecked_message(usage):
    return _("APRAS cannot check the Sortir! card ending in {last4} right now. You can still place your order: "
             "it will be confirmed once APRAS has accepted the card.").format(last4=usage.card_last4)


class SortirCardDisplayField(forms.CharField):
    """
    After the order is placed the buyer cannot change the card: the field is shown read-only (so pretix lists
    the masked card of each ticket on the order pages and in the "change details" form) and keeps its value.
    """
    widget = CardNumberInput

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label", _("Sortir! card number"))
        kwargs.setdefault("help_text", _("The card cannot be changed after the order is placed. Please contact the organizer."))
        super().__init__(*args, required=False, disabled=True, **kwargs)

    def clean(self, value):
        return display_value(value) or None


def card_field_for(event, position):
    if not isinstance(position, CartPosition):
        return SortirCardDisplayField()
    return SortirCardField(event=event, position=position, required=True)
