"""
DocuSeal on pretix's outbound data-sync queue: one signature request (a DocuSeal submission) per ticket that needs one.

- A product requires a signature when it has a :class:`~.models.SignatureProduct` row (its own template, or the
  event's default template).
- The event chooses whether the requests go out when an order is placed or when it is paid.
- Every submission carries the ticket as its submitter's ``external_id`` (``pretix-<organiser>-<event>-<order>-<position>``,
  ``-g<n>`` appended for a request sent again after a decline or expiry). DocuSeal does not enforce unique external
  ids, so the job always looks the submitter up (``GET /submitters?external_id=``) before ``POST /submissions``: a
  retry, also after an answer that was lost, never creates a second request.
- Cancelling the order (or the ticket), or its expiry, archives open requests (``DELETE /submissions/{id}``); signed
  documents are kept.
- The organiser's "Resend" asks DocuSeal to email the signing link again (``PUT /submitters/{id}``); a declined or
  expired request is replaced by a new one.

The state of each request lives in :class:`~.models.SignatureRequest`, so the order pages and the order list can show
and filter it; DocuSeal's webhooks (:mod:`.docuseal_webhooks`) keep it current.
"""
from functools import cached_property

from django.db import connection, transaction
from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.datasync.datasync import OutboundSyncProvider, StaticMapping, SyncConfigError, datasync_providers
from pretix.base.datasync.sourcefields import ORDER, ORDER_POSITION
from pretix.base.models import Order

from pretix_integrations_core.datasync import HttpSyncProviderMixin
from pretix_integrations_core.errors import ServiceNotFound

from . import config
from .models import SignatureProduct, SignatureRequest


def external_id(position, generation=1):
    order = position.order
    base = f"pretix-{order.event.organizer.slug}-{order.event.slug}-{order.code}-{position.positionid}"
    return base if generation <= 1 else f"{base}-g{generation}"


def template_for(event, item_id):
    """The DocuSeal template id the tickets of this product are signed with; None when the product needs no signature, 0 when
    it does but no template is set."""
    sp = SignatureProduct.objects.filter(event=event, item_id=item_id).first()
    if sp is None:
        return None
    if sp.template_id:
        return sp.template_id
    default = str(event.settings.get(config.DOCUSEAL_TEMPLATE) or "").strip()
    return int(default) if default.isdigit() else 0


def signature_items(event):
    return set(SignatureProduct.objects.filter(event=event).values_list("item_id", flat=True))


def is_triggered(order):
    """Whether the order's requests should exist by now (paid, or placed when the event says so)."""
    if order.status == Order.STATUS_PAID:
        return True
    return order.status == Order.STATUS_PENDING and order.event.settings.get(config.DOCUSEAL_WHEN) == config.WHEN_PLACED


def prepare_requests(order):
    """Local rows in "waiting to be sent" for the tickets that need a signature (no HTTP): the order pages, the order list
    filter and the dashboard show them at once. It runs in the request that marks the order paid, so it is one statement
    (``INSERT … SELECT``): the order's tickets whose product needs a signature and that have no row yet; a row that
    appeared meanwhile (a job running in parallel) is left alone, a ticket has at most one row."""
    if not order.event.settings.get(config.DOCUSEAL_ENABLED, as_type=bool) or order.testmode or not is_triggered(order):
        return
    with connection.cursor() as cursor:
        cursor.execute(*_insert_pending_sql(order))


def _insert_pending_sql(order):
    from pretix.base.models import OrderPosition
    qn = connection.ops.quote_name
    req, pos, prod = (qn(m._meta.db_table) for m in (SignatureRequest, OrderPosition, SignatureProduct))
    fixed = {"position": None, "order": order.pk, "organizer": order.event.organizer_id, "updated": now()}
    columns, values = [], []
    for field in SignatureRequest._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(qn(field.column))
        if field.name != "position":
            value = fixed[field.name] if field.name in fixed else field.get_default()
            values.append(field.get_db_prep_save(value, connection))
    select = ", ".join("p.id" if c == qn(SignatureRequest._meta.get_field("position").column) else "%s" for c in columns)
    sql = (
        f"INSERT INTO {req} ({', '.join(columns)}) SELECT {select} FROM {pos} p "
        f"WHERE p.{qn('order_id')} = %s AND NOT p.{qn('canceled')} "
        f"AND EXISTS (SELECT 1 FROM {prod} sp WHERE sp.{qn('event_id')} = %s AND sp.{qn('item_id')} = p.{qn('item_id')}) "
        f"AND NOT EXISTS (SELECT 1 FROM {req} r WHERE r.{qn('position_id')} = p.id) "
        f"ON CONFLICT DO NOTHING"
    )
    return sql, [*values, order.pk, order.event_id]


def signer(position):
    order = position.order
    email = position.attendee_email or order.email
    name = position.attendee_name or ""
    if not name:
        try:
            name = order.invoice_address.name
        except Exception:  # noqa: B902 - no invoice address
            name = ""
    return {k: v for k, v in {"email": email, "name": name}.items() if v}


def _status_of(submitter):
    status = (submitter or {}).get("status") or ""
    return {"awaiting": SignatureRequest.SENT, "sent": SignatureRequest.SENT, "opened": SignatureRequest.OPENED,
            "completed": SignatureRequest.COMPLETED, "declined": SignatureRequest.DECLINED}.get(status, SignatureRequest.SENT)


@datasync_providers.register
class DocuSealSync(HttpSyncProviderMixin, OutboundSyncProvider):
    identifier = "pretix_crm_bridge_docuseal"
    display_name = "DocuSeal"
    MAPPING_SUBMISSION = 1
    mappings = [StaticMapping(MAPPING_SUBMISSION, "OrderPosition", "submission", "ticket_id", "external_id", [])]
    #: seconds to wait for an answer (pretix fails jobs in flight for 20 minutes: stay well below)
    read_timeout = 10.0

    @classmethod
    def enqueue_order(cls, order, triggered_by, not_before=None, immediate=False):
        prepare_requests(order)
        return super().enqueue_order(order, triggered_by, not_before=not_before, immediate=immediate)

    @cached_property
    def client(self):
        return config.docuseal_client(self.event.organizer, read_timeout=self.read_timeout)

    @cached_property
    def items(self):
        return signature_items(self.event)

    def should_sync_order(self, order):
        if order.testmode or not self.event.settings.get(config.DOCUSEAL_ENABLED, as_type=bool):
            return False
        return bool(self.items) or SignatureRequest.objects.filter(order=order).exists()

    def sync_object_with_properties(self, external_id_field, id_value, properties, inputs, mapping, mapped_objects, **kwargs):
        order, position = inputs[ORDER], inputs[ORDER_POSITION]
        req = SignatureRequest.objects.filter(position=position).first()
        if req is None and position.item_id not in self.items:
            return None
        # canceled or expired, or the ticket was changed to a product that needs no signature
        gone = order.status in (Order.STATUS_CANCELED, Order.STATUS_EXPIRED) or position.canceled or position.item_id not in self.items
        if gone:
            return self.archive(order, req) if req else None
        if not is_triggered(order):
            return self.result(req, "nothing_to_do") if req and req.submission_id else None
        if req is None:
            req, _created = SignatureRequest.objects.get_or_create(position=position, defaults={"order": order, "organizer": order.event.organizer})
        if req.resend_requested:
            return self.resend(order, position, req)
        if req.submission_id and req.status != SignatureRequest.ARCHIVED:
            return self.result(req, "nothing_to_do")
        if req.submission_id:  # withdrawn earlier (order canceled, then reactivated): a new request, under a new external id
            req.generation += 1
            req.submission_id = req.submitter_id = None
            req.status, req.signed_pdf_url, req.decline_reason, req.create_sent_at = SignatureRequest.PENDING, "", "", None
            req.save()
        return self.create(order, position, req)

    # -- steps -----------------------------------------------------------------------------------------

    def result(self, req, action):
        # the signing link stays in SignatureRequest only (pretix's shredder for it clears it)
        info = {"action": action, "submission_id": req.submission_id, "submitter_id": req.submitter_id, "status": req.status}
        if req.submission_id:
            info["external_link_href"] = self.client.submission_url(req.submission_id)
            info["external_link_display_name"] = _("DocuSeal submission #{id}").format(id=req.submission_id)
        return info

    def create(self, order, position, req):
        template = template_for(self.event, position.item_id)
        if not template:
            msg = _("The product “{product}” requires a signature, but no DocuSeal template is set, neither on the product nor "
                    "in the event's CRM settings.").format(product=position.item.name)
            raise SyncConfigError([msg], msg)
        ext = external_id(position, req.generation)
        # Only an earlier attempt that sent the request may have created it (its answer lost): then look it up first.
        found = self.client.find_submitter(ext) if req.create_sent_at else None
        action = "found"
        if found is None:
            req.create_sent_at = now()
            req.save(update_fields=["create_sent_at", "updated"])  # committed before the request leaves
            body = {
                "template_id": template,
                "send_email": self.event.settings.get(config.DOCUSEAL_SEND_EMAIL, as_type=bool),
                "completed_redirect_url": _order_url(order),
                "submitters": [{**signer(position), "external_id": ext,
                                "metadata": {"order": order.code, "position": position.positionid, "event": self.event.slug}}],
            }
            found, action = self.client.create_submission(body), "create"
        with transaction.atomic():
            req.refresh_from_db()
            req.template_id, req.external_id = template, ext
            req.submission_id, req.submitter_id = found.get("submission_id"), found.get("id")
            req.submitter_slug = found.get("slug") or ""
            req.signing_url = found.get("embed_src") or ""
            req.status = _status_of(found)
            req.save()
            order.log_action("pretix_crm_bridge.docuseal.sent", data={"position": position.positionid, "submission_id": req.submission_id})
        return self.result(req, action)

    def archive(self, order, req):
        if req.submission_id and req.is_open:
            try:
                self.client.archive_submission(req.submission_id)
            except ServiceNotFound:
                pass  # already gone in DocuSeal
            with transaction.atomic():
                req.status = SignatureRequest.ARCHIVED
                req.resend_requested = False
                req.save(update_fields=["status", "resend_requested", "updated"])
                order.log_action("pretix_crm_bridge.docuseal.archived",
                                 data={"position": req.position.positionid, "submission_id": req.submission_id})
            return self.result(req, "archive")
        if not req.submission_id and req.status == SignatureRequest.PENDING:
            req.delete()  # never sent: nothing to withdraw
            return None
        return self.result(req, "nothing_to_do")

    def resend(self, order, position, req):
        if req.submission_id and req.status in (SignatureRequest.SENT, SignatureRequest.OPENED, SignatureRequest.STARTED):
            try:
                self.client.resend(req.submitter_id)
            except ServiceNotFound:
                req.submission_id = None  # deleted in DocuSeal: send a new request
            else:
                req.resend_requested = False
                req.save(update_fields=["resend_requested", "updated"])
                order.log_action("pretix_crm_bridge.docuseal.resent", data={"position": position.positionid, "submission_id": req.submission_id})
                return self.result(req, "resend")
        if req.submission_id and req.status == SignatureRequest.COMPLETED:
            req.resend_requested = False
            req.save(update_fields=["resend_requested", "updated"])
            return self.result(req, "nothing_to_do")
        # declined, expired, withdrawn or gone: a new request, under a new external id
        if req.submission_id:
            req.generation += 1
            req.create_sent_at = None
        req.submission_id = req.submitter_id = None
        req.status, req.resend_requested, req.signed_pdf_url, req.decline_reason = SignatureRequest.PENDING, False, "", ""
        req.save()
        return self.create(order, position, req)


def _order_url(order):
    from pretix.multidomain.urlreverse import build_absolute_uri
    return build_absolute_uri(order.event, "presale:event.order", kwargs={"order": order.code, "secret": order.secret})


def shredder_class():
    """pretix's data shredder for the signature requests: the signing links and the signers' decline reasons."""
    import json

    from pretix.base.shredder import BaseDataShredder

    class SignatureRequestShredder(BaseDataShredder):
        verbose_name = _("DocuSeal signature requests")
        identifier = "pretix_crm_bridge_docuseal"
        description = _("This removes the signing links, the links to the signed documents and the reasons signers gave "
                        "for declining, kept by the CRM bridge. The documents themselves stay in DocuSeal.")

        def _requests(self):
            return SignatureRequest.objects.filter(order__event=self.event)

        def generate_files(self):
            yield "docuseal-signatures.json", "application/json", json.dumps({
                f"{r.order.code}-{r.position.positionid}": {"status": r.status, "submission_id": r.submission_id,
                                                            "signed_document": r.signed_pdf_url, "decline_reason": r.decline_reason}
                for r in self._requests().select_related("order", "position")
            }, indent=4)

        def shred_data(self, progress_callback=None):
            self._requests().update(signing_url="", signed_pdf_url="", decline_reason="", submitter_slug="")

    return SignatureRequestShredder
