"""The live card check behind the checkout field: same server-side code as the step's own validation."""
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.clickjacking import xframe_options_exempt

from pretix.helpers.http import get_client_ip
from pretix.presale.views import get_cart

from .checkout import unchecked_message
from .holds import CardError, hold_card, requires_card
from .models import CardUsage


@method_decorator(xframe_options_exempt, name="dispatch")  # the checkout also runs inside the pretix widget
class CardCheckView(View):
    """
    POST ``position`` (a cart position of the buyer's own cart) and ``card``. CSRF-protected; only works
    for positions of the current cart that require a card, so it is no open eligibility oracle.
    """

    def post(self, request, *args, **kwargs):
        try:
            position = get_cart(request).get(pk=int(request.POST.get("position", "")))
        except (ValueError, TypeError, Exception):
            return JsonResponse({"valid": False, "error": _("Your cart has expired. Please reload the page.")}, status=404)
        if not requires_card(request.event, position.item_id, position.variation_id):
            return JsonResponse({"valid": False, "error": _("This ticket does not need a Sortir! card.")}, status=400)
        try:
            usage = hold_card(request.event, position, request.POST.get("card", ""), client_ip=get_client_ip(request))
        except CardError as e:
            status = 429 if e.code == CardError.TOO_MANY_ATTEMPTS else 200
            return JsonResponse({"valid": False, "code": e.code, "error": str(e)}, status=status)
        if usage.state == CardUsage.UNCHECKED:  # degraded mode: APRAS cannot answer, the card is checked later
            return JsonResponse({"valid": True, "unchecked": True, "last4": usage.card_last4, "message": str(unchecked_message(usage))})
        return JsonResponse({"valid": True, "last4": usage.card_last4,
                             "message": _("Sortir! card accepted (ending in {last4}).").format(last4=usage.card_last4)})
