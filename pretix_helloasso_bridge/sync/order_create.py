"""Creating one order at a time through pretix's order API serializer (new orders the bulk path does not take), and what
follows a creation: the optional confirmation email and quota warnings."""
import json
import logging
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.utils.timezone import now
from django.utils.translation import gettext as _

from pretix.base.i18n import language
from pretix.base.models import Order, OrderPosition, Quota
from pretix.base.signals import order_placed

from .. import providers as P
from ..models import RemoteObject
from .errors import SkipOrder
from .remote_ids import remember

logger = logging.getLogger(__name__)


def promo_codes(remote: P.RemoteOrder):
    """The promo codes used in the order (sorted) and the discount they gave."""
    return (sorted({p.promo_code for p in remote.positions if p.promo_code}),
            sum((p.discount for p in remote.positions), Decimal("0.00")))


def promo_meta(provider, remote: P.RemoteOrder) -> dict:
    """
    What the order keeps of its promo codes (in ``api_meta``: shown on the order page, read through pretix's order API).

    ``promo_codes`` / ``discount`` for every platform; HelloAsso orders keep their historical ``helloasso_*`` keys too
    (API consumers read them).
    """
    codes, discount = promo_codes(remote)
    meta = {"promo_codes": codes, "discount": str(discount)}
    if provider.identifier == "helloasso":
        meta.update({"helloasso_promo_codes": codes, "helloasso_discount": str(discount)})
    return meta


def order_meta(provider, remote: P.RemoteOrder) -> dict:
    """The whole ``api_meta`` of an imported order: its platform, its number there and its promo codes."""
    meta = {"platform": provider.identifier, "platform_order_id": str(remote.remote_id), **promo_meta(provider, remote)}
    if provider.identifier == "helloasso":
        meta["helloasso_order_id"] = remote.remote_id
    return meta


def order_log_ids(provider, remote: P.RemoteOrder) -> dict:
    """The remote order number in log data: neutral key, plus the historical one for HelloAsso."""
    ids = {"provider": provider.identifier, "remote_order_id": str(remote.remote_id)}
    if provider.identifier == "helloasso":
        ids["helloasso_order_id"] = remote.remote_id
    return ids


def promo_comment(provider, codes, discount, currency) -> str:
    return _("{platform} promo code: {codes} (discount {amount} {currency})").format(
        platform=provider.verbose_name, codes=", ".join(codes), amount=discount, currency=currency)


class OrderCreation:
    def _create(self, remote: P.RemoteOrder):
        from pretix.api.serializers.order import OrderCreateSerializer

        live = [p for p in remote.positions if p.state != P.CANCELED]
        cancel_after = not live
        if cancel_after:
            # cancelled or refunded before the first import: imported, then cancelled, so the refund is on record
            live = list(remote.positions)
        if not live:
            raise SkipOrder(_("the order has no items"))
        if not remote.email and not self.provider.orders_without_email:
            raise SkipOrder(_("no payer email"))
        positions, posid = [], {}
        for i, pos in enumerate(live, start=1):  # add-ons come right after their parent, as pretix requires
            item = self._item_for(pos)
            posid[pos.remote_id] = i
            data = {"positionid": i, "item": item.pk, "price": str(pos.price), "answers": self._answers(pos, item, remote)}
            if pos.addon_to:
                if pos.addon_to not in posid:
                    raise SkipOrder(_("an option belongs to a cancelled item"))
                data["addon_to"] = posid[pos.addon_to]
            if pos.attendee_first_name or pos.attendee_last_name:
                data["attendee_name_parts"] = {"_scheme": "given_family", "given_name": pos.attendee_first_name,
                                               "family_name": pos.attendee_last_name}
            if pos.attendee_email:
                data["attendee_email"] = pos.attendee_email
            if self.event.has_subevents:
                data["subevent"] = self._subevent_for(pos).pk
            if pos.secret and not pos.addon_to and not OrderPosition.all.filter(order__event=self.event, secret=pos.secret).exists():
                data["secret"] = pos.secret
            positions.append(data)
        promo, discount = promo_codes(remote)
        comment = ""
        if promo:
            comment = promo_comment(self.provider, promo, discount, self.event.currency)
        address = None
        if remote.street or remote.city or remote.company or remote.country:
            address = {"is_business": bool(remote.company), "company": remote.company, "street": remote.street, "zipcode": remote.zipcode,
                       "city": remote.city, "country": remote.country or "",
                       "name_parts": {"_scheme": "given_family", "given_name": remote.first_name, "family_name": remote.last_name}}
        payload = {
            "email": remote.email or None, "locale": self.event.settings.locale, "sales_channel": self.provider.identifier, "status": "n", "force": True,
            "send_email": False, "valid_if_pending": True, "positions": positions, "comment": comment,
            "api_meta": order_meta(self.provider, remote),
        }
        if address:
            payload["invoice_address"] = address
        ser = OrderCreateSerializer(data=payload, context={"event": self.event, "auth": None, "pdf_data": False,
                                                           "request": SimpleNamespace(event=self.event, user=None)})
        if not ser.is_valid():
            raise SkipOrder(_("pretix refused the order: {errors}").format(errors=json.dumps(ser.errors, default=str)[:300]))
        ser.save()
        order = ser.instance
        changes = {}
        if remote.date:
            changes["datetime"] = remote.date
        changes["expires"] = max(now(), self.event.date_to or self.event.date_from) + timedelta(days=365)
        Order.objects.filter(pk=order.pk).update(**changes)
        order.refresh_from_db()
        remember(self.event, RemoteObject.ORDER, remote.remote_id, order=order)
        by_posid = {p.positionid: p for p in order.all_positions.all()}
        for pos in live:
            remember(self.event, RemoteObject.POSITION, pos.remote_id, order=order, position=by_posid[posid[pos.remote_id]])
        self._import_checkins(order, remote, {pos.remote_id: by_posid[posid[pos.remote_id]] for pos in live})
        order.log_action("pretix.event.order.placed", data={"source": self.provider.identifier, **order_log_ids(self.provider, remote)})
        order_placed.send(self.event, order=order, bulk=True)
        self.report.orders_created += 1
        self._payments(order, remote, new=True)
        if cancel_after:
            self._update(order, remote, counted=True)
        elif self.link.send_emails:
            self._send_confirmation(order)
        self._quota_warnings(order)

    def _page_quota_warnings(self, item_ids):
        for q in Quota.objects.filter(event=self.event, items__in=item_ids, size__isnull=False).distinct():
            if q.pk in self.warned_quotas:
                continue
            sold = OrderPosition.objects.filter(order__event=self.event, order__status__in=(Order.STATUS_PAID, Order.STATUS_PENDING),
                                                item__in=q.items.all()).count()
            if sold > q.size:
                self.warned_quotas.add(q.pk)
                self.report.warnings.append(_("Quota “{name}” is exceeded: {sold} tickets for {size} places.").format(
                    name=q.name, sold=sold, size=q.size))

    def _send_confirmation(self, order):
        """The organiser turned pretix emails on for imported buyers: the usual "paid" (or "placed") email, with tickets."""
        from pretix.base.email import get_email_context

        order.refresh_from_db()
        paid = order.status == Order.STATUS_PAID
        s = self.event.settings
        try:
            with language(order.locale, s.region):
                order.send_mail(
                    s.mail_subject_order_paid if paid else s.mail_subject_order_placed,
                    s.mail_text_order_paid if paid else s.mail_text_order_placed,
                    get_email_context(event=self.event, order=order, payment_info="") if paid else
                    get_email_context(event=self.event, order=order, payments=list(order.payments.all())),
                    "pretix.event.order.email.order_paid" if paid else "pretix.event.order.email.order_placed",
                    attach_tickets=True,
                )
        except Exception:  # noqa: B902 - an email problem never stops an import
            logger.exception("could not send the confirmation of the imported order %s", order.code)

    def _quota_warnings(self, order):
        self._page_quota_warnings(order.positions.values("item"))
