"""DocuSeal's signal receivers: product setting, order pages, mail placeholder, log texts, order list filter. No HTTP here."""
import logging
from urllib.parse import urlsplit

from django import forms
from django.db.models import Exists, OuterRef
from django.dispatch import receiver
from django.template.loader import get_template
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _, pgettext_lazy
from django_scopes import scope

from pretix.base.logentrytypes import OrderLogEntryType, log_entry_types
from pretix.base.services.placeholders import SimpleFunctionalTextPlaceholder
from pretix.base.signals import event_copy_data, item_copy_data, register_data_shredders, register_mail_placeholders
from pretix.control.signals import item_forms, order_info as control_order_info, order_search_forms
from pretix.multidomain.urlreverse import build_absolute_uri
from pretix.presale.signals import order_info as presale_order_info, position_info as presale_position_info, process_response

from . import config
from .docuseal_client import form_script_url
from .forms import SignatureItemForm
from .models import SignatureProduct, SignatureRequest

logger = logging.getLogger(__name__)


def _requests(order):
    return list(SignatureRequest.objects.filter(order=order).select_related("position", "position__item").order_by("position__positionid"))


# -- products --------------------------------------------------------------------------------------

@receiver(item_forms, dispatch_uid="pretix_crm_bridge_docuseal_item_forms")
def product_form(sender, request, item, **kwargs):
    return SignatureItemForm(event=sender, item=item, data=request.POST if request.method == "POST" else None, prefix="docuseal")


@receiver(item_copy_data, dispatch_uid="pretix_crm_bridge_docuseal_item_copy")
def copy_product(sender, source, target, **kwargs):
    for sp in SignatureProduct.objects.filter(item=source):
        SignatureProduct.objects.update_or_create(item=target, defaults={"event": sender, "template_id": sp.template_id})


@receiver(event_copy_data, dispatch_uid="pretix_crm_bridge_docuseal_event_copy")
def copy_event(sender, other, item_map=None, **kwargs):
    for sp in SignatureProduct.objects.filter(event=other):
        target = (item_map or {}).get(sp.item_id)
        if target:
            SignatureProduct.objects.update_or_create(item=target, defaults={"event": sender, "template_id": sp.template_id})


# -- the buyer's order page and emails ---------------------------------------------------------------

@receiver(presale_order_info, dispatch_uid="pretix_crm_bridge_docuseal_presale_order_info")
def buyer_panel(sender, order, request, position=None, **kwargs):
    if not sender.settings.get(config.DOCUSEAL_ENABLED, as_type=bool):
        return ""
    reqs = [r for r in _requests(order) if r.status != SignatureRequest.ARCHIVED and (position is None or r.position_id == position.pk)]
    if not reqs:
        return ""
    return get_template("pretix_crm_bridge/docuseal_presale.html").render({
        "requests": reqs, "order": order, "script": form_script_url(sender.organizer.settings.get(config.DOCUSEAL_URL) or ""),
        "any_link": any(r.signing_url and r.is_open for r in reqs),
    }, request=request)


@receiver(presale_position_info, dispatch_uid="pretix_crm_bridge_docuseal_presale_position_info")
def attendee_panel(sender, order, position, request, **kwargs):
    """The attendee's own ticket page: only this ticket's request."""
    return buyer_panel(sender, order, request, position=position)


def _origin(url):
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


@receiver(process_response, dispatch_uid="pretix_crm_bridge_docuseal_csp")
def allow_docuseal_form(sender, request, response, **kwargs):
    """The embedded signing form loads DocuSeal's script and talks to DocuSeal: allow that host on the order page only."""
    from pretix.base.middleware import add_to_response_csp
    match = getattr(request, "resolver_match", None)
    if not match or not (match.url_name or "").startswith("event.order") or not sender.settings.get(config.DOCUSEAL_ENABLED, as_type=bool):
        return response
    api = sender.organizer.settings.get(config.DOCUSEAL_URL) or ""
    hosts = {h for h in (_origin(form_script_url(api)), _origin(api)) if h}
    from .docuseal_client import app_url
    hosts.add(_origin(app_url(api)))
    hosts = sorted(h for h in hosts if h)
    if hosts:
        add_to_response_csp(response, {"script-src": hosts, "connect-src": hosts, "frame-src": hosts, "img-src": hosts, "style-src": hosts})
    return response


def signature_links(order, event):
    """The ``{signature_links}`` text: one line per ticket still to sign, with its link (or the order page until it exists).
    One query (the order's tickets that need a signature, with their requests); the order page's address is built once,
    and only when a ticket has no signing link yet."""
    if not event.settings.get(config.DOCUSEAL_ENABLED, as_type=bool):
        return ""
    with scope(organizer=event.organizer):  # a lazy value may be computed outside the scope it was created in
        positions = list(order.positions.filter(
            Exists(SignatureProduct.objects.filter(event_id=event.pk, item_id=OuterRef("item_id")))
        ).select_related("item", "crm_signature_request").order_by("positionid"))
    order_url = None
    lines = []
    for p in positions:
        r = getattr(p, "crm_signature_request", None)
        if r and not r.is_open:
            continue
        link = r.signing_url if r and r.signing_url else None
        if not link:
            if order_url is None:
                order_url = build_absolute_uri(event, "presale:event.order", kwargs={"order": order.code, "secret": order.secret})
            link = order_url
        label = str(p.item.name) + (f" ({p.attendee_name})" if p.attendee_name else "")
        lines.append(f"{label}: {link}")
    return "\n".join(lines)


def _lazy_text(func, *args):
    """``func(*args)`` as a lazy string, computed once on first use. pretix renders every placeholder of an e-mail
    (``get_email_context``), but its formatting (``pretix.helpers.format.format_map``: ``str()``, then escaping and
    linking in the HTML part) only touches the values of the placeholders the text contains: a mail without
    ``{signature_links}`` costs nothing. Errors are logged and shown as pretix shows a failed placeholder."""
    done = []

    def value():
        if not done:
            try:
                done.append(func(*args))
            except Exception:  # noqa: B902 - the e-mail goes out anyway, as with any failing placeholder
                logger.exception("Failed to process template placeholder signature_links.")
                done.append("(error)")
        return done[0]
    return lazy(value, str)()


@receiver(register_mail_placeholders, dispatch_uid="pretix_crm_bridge_docuseal_placeholders")
def placeholders(sender, **kwargs):
    return [SimpleFunctionalTextPlaceholder(
        "signature_links", ["order", "event"], lambda order, event: _lazy_text(signature_links, order, event),
        lambda event: "Ticket (Jane Doe): https://docuseal.example/s/AbCdEf12345",
    )]


@receiver(register_data_shredders, dispatch_uid="pretix_crm_bridge_docuseal_shredder")
def shredder(sender, **kwargs):
    from .docuseal import shredder_class
    return shredder_class()


# -- control panel -----------------------------------------------------------------------------------

@receiver(control_order_info, dispatch_uid="pretix_crm_bridge_docuseal_order_info")
def staff_panel(sender, order, request, **kwargs):
    reqs = _requests(order)
    if not reqs:
        return ""
    return get_template("pretix_crm_bridge/docuseal_order_info.html").render({
        "requests": reqs, "order": order, "request": request,
        "can_change": request.user.has_event_permission(request.organizer, request.event, "event.orders:write", request=request),
    }, request=request)


SIGNATURE_FILTERS = (
    ("", pgettext_lazy("signatures", "All orders")),
    ("pending", _("Signatures pending")),
    ("completed", _("All signatures signed")),
    ("declined", _("A signature declined or expired")),
    ("none", _("No signature requested")),
)


class SignatureFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("DocuSeal signatures"), choices=SIGNATURE_FILTERS, required=False)

    def __init__(self, *args, event, **kwargs):
        self.event = event
        super().__init__(*args, **kwargs)

    def filter_qs(self, qs):
        value = self.cleaned_data.get("status")
        reqs = SignatureRequest.objects.filter(order=OuterRef("pk"))
        if value == "pending":
            return qs.filter(Exists(reqs.filter(status__in=SignatureRequest.OPEN)))
        if value == "completed":
            return qs.filter(Exists(reqs.filter(status=SignatureRequest.COMPLETED))).exclude(
                Exists(reqs.exclude(status__in=(SignatureRequest.COMPLETED, SignatureRequest.ARCHIVED))))
        if value == "declined":
            return qs.filter(Exists(reqs.filter(status__in=(SignatureRequest.DECLINED, SignatureRequest.EXPIRED))))
        if value == "none":
            return qs.exclude(Exists(reqs))
        return qs

    def filter_to_strings(self):
        value = self.cleaned_data.get("status")
        if not value:
            return []
        return [f"{self.fields['status'].label}: {dict(SIGNATURE_FILTERS)[value]}"]


@receiver(order_search_forms, dispatch_uid="pretix_crm_bridge_docuseal_order_search")
def order_filter(sender, request, **kwargs):
    if not sender.settings.get(config.DOCUSEAL_ENABLED, as_type=bool) and not SignatureProduct.objects.filter(event=sender).exists():
        return None
    data = request.POST if request.method == "POST" else request.GET
    return SignatureFilterForm(data=data, event=sender, prefix="docuseal")


# -- order log -----------------------------------------------------------------------------------------

@log_entry_types.new_from_dict({
    "pretix_crm_bridge.docuseal.sent": _("DocuSeal: signature request for ticket #{position} sent (submission {submission_id})."),
    "pretix_crm_bridge.docuseal.resent": _("DocuSeal: signing link for ticket #{position} sent again."),
    "pretix_crm_bridge.docuseal.resend_requested": _("DocuSeal: sending the signing link for ticket #{position} again was requested."),
    "pretix_crm_bridge.docuseal.viewed": _("DocuSeal: the signer opened the request for ticket #{position}."),
    "pretix_crm_bridge.docuseal.started": _("DocuSeal: the signer started filling in the request for ticket #{position}."),
    "pretix_crm_bridge.docuseal.completed": _("DocuSeal: ticket #{position} was signed."),
    "pretix_crm_bridge.docuseal.declined": _("DocuSeal: the signer declined to sign for ticket #{position}."),
    "pretix_crm_bridge.docuseal.expired": _("DocuSeal: the signature request for ticket #{position} expired."),
    "pretix_crm_bridge.docuseal.archived": _("DocuSeal: the signature request for ticket #{position} was withdrawn."),
})
class SignatureLogEntryType(OrderLogEntryType):
    pass
