"""
The one trigger map of the CRM bridge: which pretix event leads to which action in which system.

Signal receivers (``signals.py``) only look up this map and put the order in pretix's data-sync queue
(``OutboundSyncProvider.enqueue_order``); the queue worker then brings each system in step with the order as it
is *at that moment* (so a job that waits while the order changes again sends the newest state, once). No external
call ever happens in the buyer's or the admin's request. The organiser sees this map on the event's CRM page.
"""
from collections import namedtuple
from datetime import timedelta

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import config

MAUTIC = "mautic"
INVOICENINJA = "invoiceninja"
DOCUSEAL = "docuseal"

SYSTEM_NAMES = {MAUTIC: "Mautic", INVOICENINJA: "Invoice Ninja", DOCUSEAL: "DocuSeal"}
SYSTEM_ENABLED = {MAUTIC: config.MAUTIC_ENABLED, INVOICENINJA: config.NINJA_ENABLED, DOCUSEAL: config.DOCUSEAL_ENABLED}

Trigger = namedtuple("Trigger", ("signal", "label", "system", "action"))

TRIGGERS = (
    Trigger("order_placed", _("Order placed"), MAUTIC,
            _("Create or update the buyer's contact (if the buyer agreed), add the “order placed” segments.")),
    Trigger("order_placed", _("Order placed"), INVOICENINJA,
            _("Create or update the buyer's client, and the unpaid invoice if the event creates it when the order is placed.")),
    Trigger("order_paid", _("Order paid"), MAUTIC,
            _("Update the contact (if the buyer agreed), add the “order placed” and “order paid” segments, and the "
              "“order paid” campaigns (and the welcome campaigns for a first purchase) once per order.")),
    Trigger("order_paid", _("Order paid"), INVOICENINJA,
            _("Create the invoice (one per order, never twice) and record the payment (never twice).")),
    Trigger("order_changed", _("Order changed"), MAUTIC, _("Update the contact and its product tags.")),
    Trigger("order_changed", _("Order changed"), INVOICENINJA, _("Update the client; a paid order gets its invoice if it has none.")),
    Trigger("order_modified", _("Contact details or answers changed"), MAUTIC, _("Update the contact.")),
    Trigger("order_modified", _("Contact details or answers changed"), INVOICENINJA, _("Update the client.")),
    Trigger("order_canceled", _("Order canceled"), MAUTIC, _("Update the contact (its tags stay).")),
    Trigger("order_canceled", _("Order canceled"), INVOICENINJA,
            _("Refund the invoice's payment by what pretix refunded, and cancel what is still open on the invoice (a cancellation "
              "fee stays paid).")),
    Trigger("refund_done", _("Refund done"), INVOICENINJA, _("Refund the invoice's payment by what pretix refunded.")),
    Trigger("expiry_reminder", _("Unpaid order close to expiry (checked periodically)"), MAUTIC,
            _("Add the contact (if the buyer agreed) to the reminder segments; paying the order takes it out again.")),
    Trigger("order_reactivated", _("Order reactivated"), MAUTIC, _("Update the contact.")),
    Trigger("order_expired", _("Order expired"), MAUTIC, _("Update the contact.")),
    Trigger("order_placed", _("Order placed"), DOCUSEAL,
            _("If the event sends signature requests when orders are placed: one DocuSeal submission per ticket that requires "
              "a signature (never twice).")),
    Trigger("order_paid", _("Order paid"), DOCUSEAL,
            _("One DocuSeal submission per ticket that requires a signature (never twice).")),
    Trigger("order_changed", _("Order changed"), DOCUSEAL,
            _("Submissions for new tickets that require a signature; those of canceled tickets are archived.")),
    Trigger("order_canceled", _("Order canceled"), DOCUSEAL, _("Archive the open submissions (signed documents are kept).")),
    Trigger("order_expired", _("Order expired"), DOCUSEAL, _("Archive the open submissions.")),
    Trigger("order_reactivated", _("Order reactivated"), DOCUSEAL, _("New submissions for the tickets whose requests were archived.")),
    Trigger("signature_resend", _("“Resend” on the order page"), DOCUSEAL,
            _("DocuSeal emails the signing link again; a declined or expired request is replaced by a new one.")),
)


def enqueue_expiry_reminders(limit=500):
    """Periodic: queue unpaid orders that expire soon, once each, for the events that have reminder segments."""
    from django.db.models import Exists, OuterRef
    from django.utils.timezone import now
    from django_scopes import scopes_disabled

    from pretix.base.models import Event, Order
    from pretix.base.models.datasync import OrderSyncQueue, OrderSyncResult

    from .sync import MauticSync, has_consent
    count = 0
    with scopes_disabled():
        for event in Event.objects.filter(plugins__contains="pretix_crm_bridge", live=True).select_related("organizer"):
            if "pretix_crm_bridge" not in event.get_plugins() or not event.settings.get(config.MAUTIC_ENABLED, as_type=bool) \
                    or not config.segment_ids(event.settings.get(config.MAUTIC_SEGMENTS_REMINDER)):
                continue
            horizon = now() + timedelta(days=event.settings.get(config.MAUTIC_REMINDER_DAYS, as_type=int) or 2)
            reminded = OrderSyncResult.objects.filter(order=OuterRef("pk"), sync_provider=MauticSync.identifier,
                                                      sync_info__reminded=True)
            queued = OrderSyncQueue.objects.filter(order=OuterRef("pk"), sync_provider=MauticSync.identifier, in_flight=False)
            orders = Order.objects.filter(event=event, status=Order.STATUS_PENDING, expires__gt=now(), expires__lte=horizon, testmode=False)
            for order in orders.filter(~Exists(reminded), ~Exists(queued)).order_by("expires")[:limit * 4]:
                if count >= limit:
                    break
                if has_consent(order):  # without consent, nothing goes to Mautic
                    enqueue(order, "expiry_reminder")
                    count += 1
            if count >= limit:
                break
    return count


def signals():
    return sorted({t.signal for t in TRIGGERS})


def systems_for(event, signal_name):
    """The systems this event feeds that react to ``signal_name``."""
    return [s for s in dict.fromkeys(t.system for t in TRIGGERS if t.signal == signal_name)
            if event.settings.get(SYSTEM_ENABLED[s], as_type=bool)]


def enqueue(order, signal_name):
    """
    Queue the order for every system that reacts to ``signal_name``; no HTTP here.

    With a Celery worker, the job is also handed to it right after the commit (``immediate``); without one (eager
    mode would run it inside this request), it waits for pretix's periodic task.
    """
    from .sync import PROVIDERS
    for system in systems_for(order.event, signal_name):
        PROVIDERS[system].enqueue_order(order, signal_name, immediate=bool(getattr(settings, "HAS_CELERY", False)))
