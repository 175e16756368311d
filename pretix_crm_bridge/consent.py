"""
Withdrawing marketing consent, besides the staff button on the order page (views.ConsentWithdrawView):

- pretix's data shredder: :class:`MarketingConsentShredder` withdraws the consent of every order of the event and
  queues the Mautic clean-up (removal from the event's segments and campaigns, "do not contact"). It works after
  the emails are shredded too: the clean-up uses the Mautic contact id kept from the earlier sync;
- the buyer, from their order page (:class:`BuyerConsentWithdrawView`).

Nothing here calls Mautic: the data-sync queue does, in the background.
"""
import json

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _
from django.views import View

from pretix.base.models.datasync import OrderSyncResult
from pretix.base.shredder import BaseDataShredder
from pretix.multidomain.urlreverse import eventreverse
from pretix.presale.views.order import OrderDetailMixin

from .sync import MauticSync, has_consent, withdraw_consent


def _mautic_results(event):
    return {r.order_id: r for r in OrderSyncResult.objects.filter(order__event=event, sync_provider=MauticSync.identifier, mapping_id=1)}


class MarketingConsentShredder(BaseDataShredder):
    identifier = "pretix_crm_bridge_marketing_consent"
    verbose_name = _("Marketing consent (Mautic)")
    description = _("This withdraws the marketing consent buyers gave at checkout and, in the background, removes them from "
                    "this event's Mautic segments and campaigns and marks them as unsubscribed in Mautic. Choose it together "
                    "with “Emails” so that Mautic is cleaned up too.")

    def generate_files(self):
        results = _mautic_results(self.event)
        yield "marketing-consent-by-order.json", "application/json", json.dumps({
            o.code: {"consent": has_consent(o), "mautic_contact_id": (results[o.pk].sync_info or {}).get("contact_id") if o.pk in results else None}
            for o in self.event.orders.all()
        }, indent=4)

    def shred_data(self, progress_callback=None):
        results = _mautic_results(self.event)
        orders = list(self.event.orders.all())
        for i, order in enumerate(orders):
            with transaction.atomic():
                if has_consent(order):
                    withdraw_consent(order, data={"source": "shredder"})
                elif order.pk in results and (results[order.pk].sync_info or {}).get("action") != "consent_withdrawn":
                    # consent withdrawn earlier, but Mautic not cleaned up yet (e.g. a failed job): queue it again
                    MauticSync.enqueue_order(order, "consent_withdrawn")
            if progress_callback and i % 10 == 0:
                progress_callback(i / max(1, len(orders)) * 100)


class BuyerConsentWithdrawView(OrderDetailMixin, View):
    """The buyer withdraws their marketing consent from their order page (POST only)."""

    def post(self, request, *args, **kwargs):
        denied = self.verify_order_access()
        if denied:
            return denied
        order = self.order
        if has_consent(order):
            with transaction.atomic():
                withdraw_consent(order, data={"source": "buyer"})
            messages.success(request, _("You will no longer receive news from us by email. Thank you for letting us know."))
        return redirect(eventreverse(request.event, "presale:event.order", kwargs={"order": order.code, "secret": order.secret}))
