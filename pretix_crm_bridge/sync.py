"""
The CRM bridge's sync providers on pretix's outbound data-sync queue (``pretix.base.datasync``): one per system.

pretix runs them from its queue (periodic task, or a Celery worker right after the commit), retries them and shows
their state on the order page and in the failed-job lists. Every write looks the object up by its external id
first (Mautic: the email, which ``/contacts/new`` deduplicates on; Invoice Ninja: the client's ``id_number``, the
invoice ``number``, the payment's ``idempotency_key``), so running a job twice, or again after an answer was lost,
creates nothing twice. HTTP failures become pretix's sync errors in the core (:mod:`pretix_integrations_core.datasync`).
"""
import hashlib
import json
from datetime import timedelta
from functools import cached_property

from django.utils.text import slugify
from django.utils.timezone import now
from django.utils.translation import gettext as _, override
from django_countries import countries

from pretix.base.datasync.datasync import OutboundSyncProvider, StaticMapping, UnrecoverableSyncError, datasync_providers
from pretix.base.datasync.sourcefields import ORDER
from pretix.base.models import InvoiceAddress, Order, OrderFee, OrderPayment, OrderRefund
from pretix.base.models.datasync import OrderSyncQueue, OrderSyncResult

from pretix_integrations_core.datasync import HttpRecoverableSyncError, HttpSyncProviderMixin
from pretix_integrations_core.errors import ServiceRateLimited, ServiceRejected

from . import config
from .clients import SERVICE_NINJA
from .payment import IDENTIFIER as NINJA_PAYMENT
from .triggers import DOCUSEAL, INVOICENINJA, MAUTIC


def has_consent(order) -> bool:
    return bool((order.meta_info_data or {}).get("contact_form_data", {}).get(config.CONSENT_FIELD))


def withdraw_consent(order, user=None, data=None):
    """The buyer withdrew their consent: keep that on the order, log it, and queue the Mautic clean-up (no HTTP here)."""
    meta = order.meta_info_data or {}
    meta.setdefault("contact_form_data", {})[config.CONSENT_FIELD] = False
    order.meta_info = json.dumps(meta)
    order.save(update_fields=["meta_info"])
    order.log_action("pretix_crm_bridge.consent.withdrawn", user=user, data=data or {})
    if OrderSyncResult.objects.filter(order=order, sync_provider=MauticSync.identifier).exists():
        MauticSync.enqueue_order(order, "consent_withdrawn")


def _address(order):
    try:
        return order.invoice_address
    except InvoiceAddress.DoesNotExist:
        return None


def buyer_names(order):
    """(given name, family name) from the invoice address, else the first attendee name."""
    candidates = []
    ia = _address(order)
    if ia:
        candidates.append((ia.name_parts or {}, ia.name))
    for p in order.positions.all():
        candidates.append((p.attendee_name_parts or {}, p.attendee_name))
    for parts, full in candidates:
        given = parts.get("given_name") or parts.get("calling_name") or ""
        family = parts.get("family_name") or ""
        if not (given or family) and full:
            given, _sep, family = full.rpartition(" ") if " " in full else ("", "", full)
        if given or family:
            return given, family
    return "", ""


def _country_name(country):
    if not country:
        return ""
    with override("en"):
        return str(country.name)


class CrmSyncProvider(HttpSyncProviderMixin, OutboundSyncProvider):
    enabled_setting = None

    def should_sync_order(self, order):
        return not order.testmode and self.event.settings.get(self.enabled_setting, as_type=bool)


@datasync_providers.register
class MauticSync(CrmSyncProvider):
    identifier = "pretix_crm_bridge_mautic"
    display_name = "Mautic"
    enabled_setting = config.MAUTIC_ENABLED

    @property
    def mappings(self):
        extra = self.event.settings.get(config.MAUTIC_FIELD_MAPPINGS, as_type=list) or []
        return [StaticMapping(1, "Order", "contact", "email", "email", extra)]

    @cached_property
    def client(self):
        return config.mautic_client(self.event.organizer)

    def should_sync_order(self, order):
        # Mautic is a marketing tool: without the buyer's consent, nothing about them is sent to it, except, when the
        # consent was withdrawn after an earlier sync, the removal from this event's segments and campaigns.
        return super().should_sync_order(order) and (has_consent(order) or self.previous_result(order) is not None)

    def previous_result(self, order):
        return OrderSyncResult.objects.filter(order=order, sync_provider=self.identifier, mapping_id=1).first()

    def sync_object(self, inputs, mapping, mapped_objects):
        order = inputs[ORDER]
        if order.email or has_consent(order):
            return super().sync_object(inputs, mapping, mapped_objects)
        # the email was shredded (pretix's data shredder): pretix would skip the object, but the withdrawal still reaches
        # Mautic through the contact id kept from the earlier sync
        previous = self.previous_result(order)
        if previous is None:
            return None
        info = self.withdraw(order)
        previous.external_link_href = info.pop("external_link_href", None) or previous.external_link_href
        previous.external_link_display_name = info.pop("external_link_display_name", None) or previous.external_link_display_name
        previous.sync_info, previous.transmitted = info, now()
        previous.save(update_fields=["external_link_href", "external_link_display_name", "sync_info", "transmitted"])
        return previous

    def withdraw(self, order):
        previous = self.previous_result(order)
        contact_id = previous.sync_info.get("contact_id")
        if previous.sync_info.get("action") == "consent_withdrawn" or not contact_id:
            return {**previous.sync_info, "action": "nothing_to_do"}
        segments = config.segment_ids(self.event.settings.get(config.MAUTIC_SEGMENTS_PLACED)) + \
            config.segment_ids(self.event.settings.get(config.MAUTIC_SEGMENTS_PAID)) + (previous.sync_info.get("segments") or [])
        for segment in dict.fromkeys(segments):
            self.client.remove_from_segment(segment, contact_id)
        for campaign in previous.sync_info.get("campaigns") or []:
            self.client.remove_from_campaign(campaign, contact_id)
        self.client.do_not_contact(contact_id, _("Consent withdrawn (pretix order {code})").format(code=order.full_code))
        return {"action": "consent_withdrawn", "contact_id": contact_id, "segments": [], "campaigns": [],
                "external_link_href": self.client.contact_url(contact_id),
                "external_link_display_name": _("Mautic contact #{id}").format(id=contact_id)}

    def contact_body(self, order):
        given, family = buyer_names(order)
        ia = _address(order)
        tag = config.event_tag(self.event)
        tags = [tag] + sorted({f"{tag}-{slugify(str(p.item.name))}" for p in order.positions.select_related("item")})
        body = {
            "email": order.email, "firstname": given, "lastname": family, "preferred_locale": order.locale or "",
            "company": ia.company if ia else "", "address1": ia.street if ia else "", "zipcode": ia.zipcode if ia else "",
            "city": ia.city if ia else "", "country": _country_name(ia.country) if ia else "",
            "phone": str(order.phone) if order.phone else "", "tags": tags,
        }
        return {k: v for k, v in body.items() if v not in ("", None)}

    def sync_object_with_properties(self, external_id_field, id_value, properties, inputs, mapping, mapped_objects, **kwargs):
        order = inputs[ORDER]
        if not has_consent(order):
            return self.withdraw(order)
        body = self.contact_body(order)
        for field, value, _mode in properties:  # the organiser's extra fields (pretix's mapping editor, "overwrite" only)
            if value not in (None, "") and field not in ("email", "tags"):
                body[field] = value if isinstance(value, (int, float, bool)) else str(value)
        created, contact = self.client.upsert_contact(body)
        segments = config.segment_ids(self.event.settings.get(config.MAUTIC_SEGMENTS_PLACED))
        if order.status == order.STATUS_PAID:
            segments += config.segment_ids(self.event.settings.get(config.MAUTIC_SEGMENTS_PAID))
        reminder = config.segment_ids(self.event.settings.get(config.MAUTIC_SEGMENTS_REMINDER))
        days = self.event.settings.get(config.MAUTIC_REMINDER_DAYS, as_type=int) or 2
        reminded = bool(reminder) and order.status == order.STATUS_PENDING and now() < order.expires <= now() + timedelta(days=days)
        if reminded:
            segments += reminder
        segments = list(dict.fromkeys(segments))
        previous = self.previous_result(order)
        # segments an earlier sync of this order already added this contact to are not added again (one call less per
        # job; membership is idempotent in Mautic, and an organiser who took the contact out of one meanwhile is obeyed)
        added = set(previous.sync_info.get("segments") or []) if previous and previous.sync_info.get("contact_id") == contact["id"] else set()
        for segment in segments:
            if segment not in added:
                self.client.add_to_segment(segment, contact["id"])
        if order.status == order.STATUS_PAID and previous and previous.sync_info.get("reminded"):
            for segment in reminder:
                if segment not in segments:
                    self.client.remove_from_segment(segment, contact["id"])
        campaigns = self.add_to_campaigns(order, contact["id"])
        return {
            "action": "create" if created else "update",
            "contact_id": contact["id"],
            "segments": segments,
            "campaigns": campaigns,
            "reminded": reminded or bool(previous and previous.sync_info.get("reminded") and order.status != order.STATUS_PAID),
            "external_link_href": self.client.contact_url(contact["id"]),
            "external_link_display_name": _("Mautic contact #{id}").format(id=contact["id"]),
        }

    @staticmethod
    def is_first_purchase(order):
        """No earlier paid order of this email address with this organizer."""
        return not Order.objects.filter(event__organizer=order.event.organizer, email__iexact=order.email, status=Order.STATUS_PAID,
                                        datetime__lt=order.datetime).exclude(pk=order.pk).exists()

    def add_to_campaigns(self, order, contact_id):
        """Paid orders join the event's campaigns, once per order: re-adding a contact may restart a campaign in Mautic."""
        previous = OrderSyncResult.objects.filter(order=order, sync_provider=self.identifier, mapping_id=1).first()
        done = [c for c in (previous.sync_info.get("campaigns") or []) if previous.sync_info.get("contact_id") == contact_id] if previous else []
        if order.status != order.STATUS_PAID:
            return done
        campaigns = config.segment_ids(self.event.settings.get(config.MAUTIC_CAMPAIGNS_PAID))
        welcome = config.segment_ids(self.event.settings.get(config.MAUTIC_CAMPAIGNS_WELCOME))
        if welcome and self.is_first_purchase(order):
            campaigns += welcome
        for campaign in dict.fromkeys(campaigns):
            if campaign not in done:
                self.client.add_to_campaign(campaign, contact_id)
                done.append(campaign)
        return done


@datasync_providers.register
class InvoiceNinjaSync(CrmSyncProvider):
    identifier = "pretix_crm_bridge_invoiceninja"
    display_name = "Invoice Ninja"
    enabled_setting = config.NINJA_ENABLED

    MAPPING_CLIENT, MAPPING_INVOICE = 1, 2
    mappings = [
        StaticMapping(MAPPING_CLIENT, "Order", "client", "email", "id_number", []),
        StaticMapping(MAPPING_INVOICE, "Order", "invoice", "event_order_code", "number", []),
    ]

    @cached_property
    def client(self):
        return config.invoiceninja_client(self.event.organizer)

    def sync_order(self, order):
        # an earlier attempt of this job failed: requests it sent may have arrived without an answer, so this attempt
        # looks every object up before creating it
        self._retrying = OrderSyncQueue.objects.filter(order=order, sync_provider=self.identifier, failed_attempts__gt=0).exists()
        return super().sync_order(order)

    def previous_result(self, order, mapping_id):
        return OrderSyncResult.objects.filter(order=order, sync_provider=self.identifier, mapping_id=mapping_id).first()

    def sync_object_with_properties(self, external_id_field, id_value, properties, inputs, mapping, mapped_objects, **kwargs):
        order = inputs[ORDER]
        if mapping.id == self.MAPPING_CLIENT:
            return self.sync_client(order)
        client_result = (mapped_objects.get(self.MAPPING_CLIENT) or [None])[0]
        if not client_result:
            return None
        if order.status == order.STATUS_PENDING and order.total > 0 and self.event.settings.get(config.NINJA_INVOICE_PENDING, as_type=bool):
            # the invoice exists before the money arrives, so a bank transfer can be reconciled in Invoice Ninja
            return self.sync_invoice(order, client_result.sync_info["client_id"])
        if order.status != order.STATUS_PAID or order.total <= 0:
            return self.sync_refunds_only(order, client_result.sync_info["client_id"])
        return self.sync_invoice(order, client_result.sync_info["client_id"])

    # -- client ---------------------------------------------------------------------------------------

    @staticmethod
    def client_key(order):
        return "pretix:" + order.email.strip().lower()

    def client_fields(self, order):
        given, family = buyer_names(order)
        ia = _address(order)
        fields = {"name": (ia.company if ia and ia.company else " ".join(filter(None, (given, family)))),
                  "address1": ia.street if ia else "", "city": ia.city if ia else "", "postal_code": ia.zipcode if ia else "",
                  "vat_number": ia.vat_id if ia else ""}
        if ia and ia.country:
            numeric = countries.numeric(str(ia.country))
            if numeric:
                fields["country_id"] = str(numeric)
        return {k: v for k, v in fields.items() if v}

    @staticmethod
    def client_fingerprint(key, fields):
        return hashlib.sha256(json.dumps([key, fields], sort_keys=True).encode()).hexdigest()[:16]

    def sync_client(self, order):
        key = self.client_key(order)
        fields = self.client_fields(order)
        fingerprint = self.client_fingerprint(key, fields)
        previous = self.previous_result(order, self.MAPPING_CLIENT)
        if previous and previous.sync_info.get("client_id") and previous.sync_info.get("fingerprint") == fingerprint:
            # an earlier job of this order found or created this client with the same details: nothing to read or send
            # again (if the client was deleted in Invoice Ninja meanwhile, creating the invoice fails and the next
            # attempt looks the client up afresh, see sync_invoice)
            return {"action": "nothing_to_do", "client_id": previous.sync_info["client_id"], "fingerprint": fingerprint,
                    "external_link_href": previous.external_link_href, "external_link_display_name": previous.external_link_display_name}
        existing = self.client.find_client(key)
        action = "nothing_to_do"
        if existing is None:
            given, family = buyer_names(order)
            body = {**fields, "id_number": key, "contacts": [{"first_name": given, "last_name": family, "email": order.email, "send_email": True}]}
            try:
                existing, action = self.client.create_client(body), "create"
            except ServiceRejected as e:
                # created meanwhile (another job, or a request whose answer was lost): use that one
                if not (e.status == 422 and "id_number" in ((e.payload or {}).get("errors") or {})):
                    raise
                existing = self.client.find_client(key)
                if existing is None:
                    raise
        if existing.get("is_deleted"):
            msg = _("The client {key} was deleted in Invoice Ninja; its ID number cannot be used again. Restore it there, "
                    "then retry.").format(key=key)
            raise UnrecoverableSyncError([msg], msg)
        if action == "nothing_to_do" and any(str(existing.get(k) or "") != str(v) for k, v in fields.items()):
            # without "contacts" in the body, Invoice Ninja leaves the client's contacts alone
            existing, action = self.client.update_client(existing["id"], fields), "update"
        return {
            "action": action, "client_id": existing["id"], "fingerprint": fingerprint,
            "external_link_href": self.client.client_url(existing["id"]),
            "external_link_display_name": _("Invoice Ninja client {name}").format(name=existing.get("display_name") or existing.get("name") or key),
        }

    # -- invoice and payment --------------------------------------------------------------------------

    @staticmethod
    def invoice_number(order):
        inv = order.invoices.filter(is_cancellation=False).order_by("-date", "-pk").first()
        return inv.number if inv else order.full_code

    def line_items(self, order):
        lines = []
        for p in order.positions.select_related("item", "variation", "tax_rule").order_by("positionid"):
            name = str(p.item.name) + (f" – {p.variation.value}" if p.variation else "")
            lines.append({"product_key": name, "notes": p.attendee_name or "", "cost": float(p.price), "quantity": 1,
                          "tax_name1": str(p.tax_rule.name) if p.tax_rule and p.tax_rate else "",
                          "tax_rate1": float(p.tax_rate or 0), "type_id": "1"})
        for f in order.fees.select_related("tax_rule"):
            lines.append({"product_key": str(f.get_fee_type_display()), "notes": f.description or "", "cost": float(f.value), "quantity": 1,
                          "tax_name1": str(f.tax_rule.name) if f.tax_rule and f.tax_rate else "",
                          "tax_rate1": float(f.tax_rate or 0), "type_id": "1"})
        return lines

    def sync_invoice(self, order, client_id):
        """
        The order's invoice, created once, and its payments.

        The invoice is looked up by its number first whenever an earlier sync of this order ran or an earlier attempt of
        this job failed (a lost answer may have created it). On a first attempt nothing can exist yet, and the number
        is unique in Invoice Ninja anyway (a second create gets a 422, then the invoice is looked up), so the lookup is
        skipped: a paid order costs two calls, the invoice and the payment.
        """
        previous = self.previous_result(order, self.MAPPING_INVOICE)
        # an invoice sent while the order was pending keeps its number when pretix invoices the payment later
        number = (previous.sync_info.get("number") if previous else None) or self.invoice_number(order)
        must_look = self._retrying or previous is not None
        invoice = self.client.find_invoice(number) if must_look else None
        action = "nothing_to_do"
        if invoice is None:
            paid = order.payments.filter(state=OrderPayment.PAYMENT_STATE_CONFIRMED).order_by("-payment_date").first()
            day = (paid.payment_date if paid and paid.payment_date else order.datetime).date().isoformat()
            body = {"client_id": client_id, "number": number, "po_number": order.code, "date": day, "due_date": day,
                    "public_notes": _("Order {code}").format(code=order.full_code), "uses_inclusive_taxes": True,
                    "line_items": self.line_items(order)}
            try:
                invoice = self.client.create_invoice(body, send_email=self.event.settings.get(config.NINJA_SEND_EMAIL, as_type=bool))
                action = "create"
            except ServiceRejected as e:
                errors = (e.payload or {}).get("errors") or {}
                if e.status == 422 and "client_id" in errors:
                    # the client known from an earlier job is gone (deleted or merged in Invoice Ninja): forget it, and
                    # let the next attempt look it up again (and say so if it was deleted)
                    OrderSyncResult.objects.filter(order=order, sync_provider=self.identifier, mapping_id=self.MAPPING_CLIENT).delete()
                    msg = _("Invoice Ninja no longer accepts the client of this order; the next attempt looks it up again.")
                    raise HttpRecoverableSyncError([msg], msg) from None
                if not (e.status == 422 and "number" in errors):
                    raise
                invoice = self.client.find_invoice(number)  # created by an earlier attempt whose answer was lost
                if invoice is None:
                    raise
        if invoice.get("is_deleted"):
            msg = _("The invoice {number} was deleted in Invoice Ninja; its number cannot be used again. Restore it there, "
                    "then retry.").format(number=number)
            raise UnrecoverableSyncError([msg], msg)
        if action == "nothing_to_do" and order.status == order.STATUS_PENDING and str(invoice.get("status_id")) in ("1", "2") \
                and not float(invoice.get("paid_to_date") or 0) and abs(float(invoice.get("amount") or 0) - float(order.total)) > 0.005:
            # an unpaid invoice follows the pending order (changed, or cancelled with a fee the buyer still owes)
            invoice, action = self.client.update_invoice(invoice["id"], {"line_items": self.line_items(order)}), "update"
        payments = self.sync_payments(order, client_id, invoice, fresh=action == "create")
        refunded = self.sync_refunds(order, client_id, invoice)
        cancelled = self.cancel_open_balance(order, invoice, previous)
        if (payments or refunded or cancelled) and action == "nothing_to_do":
            action = "update"
        return {
            "action": action, "invoice_id": invoice["id"], "number": number, "payments": payments, "refunded": refunded,
            "cancelled": cancelled or bool(previous and previous.sync_info.get("cancelled")),
            "external_link_href": self.client.invoice_url(invoice["id"]),
            "external_link_display_name": _("Invoice Ninja invoice {number}").format(number=number),
        }

    def sync_refunds_only(self, order, client_id):
        """
        An order that is not paid (any more) but whose invoice was sent earlier (when it was paid, or placed): mirror its
        refunds, and once it is cancelled, cancel what is still open on the invoice.
        """
        previous = OrderSyncResult.objects.filter(order=order, sync_provider=self.identifier, mapping_id=self.MAPPING_INVOICE).first()
        if previous is None:
            return None
        cancel_pending = order.status == Order.STATUS_CANCELED and not previous.sync_info.get("cancelled")
        if not cancel_pending and not order.refunds.filter(state=OrderRefund.REFUND_STATE_DONE).exists():
            return None
        number = previous.sync_info.get("number")
        invoice = self.client.find_invoice(number) if number else None
        if invoice is None or invoice.get("is_deleted"):
            return None
        refunded = self.sync_refunds(order, client_id, invoice)
        cancelled = self.cancel_open_balance(order, invoice, previous)
        return {
            "action": "update" if refunded or cancelled else "nothing_to_do", "invoice_id": invoice["id"], "number": number,
            "payments": previous.sync_info.get("payments") or [], "refunded": refunded,
            "cancelled": cancelled or bool(previous.sync_info.get("cancelled")),
            "external_link_href": self.client.invoice_url(invoice["id"]),
            "external_link_display_name": _("Invoice Ninja invoice {number}").format(number=number),
        }

    def sync_refunds(self, order, client_id, invoice):
        """
        Bring what this order's payments still hold in Invoice Ninja down to what pretix still holds (paid minus refunded).

        Invoice Ninja's refund call has no idempotency key, so the amount is computed from its current state every
        time (what its payments hold, net of their refunds, minus what pretix holds): a retry after a lost answer
        refunds nothing twice.
        """
        refunded = sum(float(r.amount) for r in order.refunds.filter(state=OrderRefund.REFUND_STATE_DONE))
        if refunded <= 0:
            return 0.0
        # what pretix still holds for this order, and what Invoice Ninja shows as held: the difference is refunded there
        # (so a cancellation fee kept in pretix stays paid in Invoice Ninja, and an overpayment refunded is not taken off)
        paid = sum(float(p.amount) for p in order.payments.filter(
            state__in=(OrderPayment.PAYMENT_STATE_CONFIRMED, OrderPayment.PAYMENT_STATE_REFUNDED)))
        prefix = f"pretix {order.full_code}-P-"
        reconciled = {p.info_data.get("invoiceninja_payment_id") for p in order.payments.filter(provider=NINJA_PAYMENT)}
        payments = [p for p in self.client.list_payments(client_id)
                    if (str(p.get("transaction_reference") or "").startswith(prefix) or p.get("id") in reconciled) and not p.get("is_deleted")]
        held = sum(float(p.get("amount") or 0) - float(p.get("refunded") or 0) for p in payments)
        missing = round(held - max(paid - refunded, 0.0), 2)
        done = 0.0
        for p in payments:
            if missing - done <= 0.005:
                break
            part = round(min(missing - done, float(p.get("amount") or 0) - float(p.get("refunded") or 0)), 2)
            if part <= 0:
                continue
            lines = [{"invoice_id": pa["invoice_id"], "amount": part} for pa in p.get("paymentables") or [] if pa.get("invoice_id") == invoice["id"]]
            self.client.refund_payment({"id": p["id"], "amount": part, "date": now().date().isoformat(), "invoices": lines[:1],
                                        "gateway_refund": False, "send_email": False})
            done += part
        return round(done, 2)

    def cancel_open_balance(self, order, invoice, previous=None):
        """
        A cancelled order (fully, or with a cancellation fee) owes nothing more: if its invoice still shows an open
        balance in Invoice Ninja (never paid, or refunded), Invoice Ninja's ``cancel`` action drops that balance; what was
        paid (e.g. the cancellation fee) stays recorded. Done once; an invoice that is fully paid is left alone.
        """
        if previous is not None and previous.sync_info.get("cancelled"):
            return False
        cancelled = order.status == Order.STATUS_CANCELED or order.fees.filter(fee_type=OrderFee.FEE_TYPE_CANCELLATION).exists()
        if not cancelled or order.pending_sum > 0:
            return False
        current = self.client.get_invoice(invoice["id"])
        if current.get("is_deleted") or str(current.get("status_id")) not in ("2", "3") or float(current.get("balance") or 0) <= 0.005:
            return False
        self.client.cancel_invoice(invoice["id"])
        return True

    def sync_payments(self, order, client_id, invoice, fresh=False):
        """
        Record pretix's confirmed payments against the invoice, each once (idempotency key per pretix payment).

        An invoice created in this run cannot have payments yet, so the lookup is skipped then (``fresh``).
        """
        balance = float(invoice.get("balance") or 0)
        if str(invoice.get("status_id")) == "4" or balance <= 0:
            return []
        recorded = []
        # payments reconciled in Invoice Ninja (ninja_webhooks.py) are already there: never recorded back
        for p in order.payments.filter(state=OrderPayment.PAYMENT_STATE_CONFIRMED).exclude(provider=NINJA_PAYMENT).order_by("local_id"):
            if balance <= 0.005:
                break
            key = f"pretix:{self.event.pk}:{order.code}:P{p.local_id}"
            reference = f"pretix {order.full_code}-P-{p.local_id}"
            if not fresh and self.client.find_payment(client_id, key, reference):
                continue
            amount = round(min(float(p.amount), balance), 2)
            body = {"client_id": client_id, "amount": amount, "date": (p.payment_date or order.datetime).date().isoformat(),
                    "type_id": "1", "transaction_reference": reference, "idempotency_key": key,
                    "invoices": [{"invoice_id": invoice["id"], "amount": amount}]}
            try:
                payment = self.client.create_payment(body)
            except ServiceRejected as e:
                errors = (e.payload or {}).get("errors") or {}
                if e.status == 422 and "idempotency_key" in errors:
                    continue  # already recorded by an earlier attempt
                if e.status == 400 and (e.payload or {}).get("message") == "Duplicate request":
                    raise ServiceRateLimited(SERVICE_NINJA, e.operation, retry_after=60, payload=e.payload) from None
                raise
            balance -= amount
            recorded.append(payment["id"])
        return recorded


from .docuseal import DocuSealSync  # NOQA: E402 - registers the DocuSeal provider (its own module)

PROVIDERS = {MAUTIC: MauticSync, INVOICENINJA: InvoiceNinjaSync, DOCUSEAL: DocuSealSync}
