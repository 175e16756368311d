"""
Card numbers never reach Django's error reports (the e-mails to ADMINS, the debug page of a 500).

The card field is posted to pretix's own checkout views, which a plugin cannot decorate with
``sensitive_post_parameters``; and the number then sits in the frame locals of the code that checks it (the form
field, the hold, the APRAS request's URL). So the plugin wraps Django's default exception reporter filter (whatever
the installation configured, ``SafeExceptionReporterFilter`` by default) once, from ``AppConfig.ready``:

- the POST parameters that carry a card (``<position>-pretix_sortir_card`` of the checkout, ``card`` of the live
  check, ``card_number`` of the control panel's "attach a card") are shown as stars, wherever the request's POST
  appears (request information and frame locals);
- any frame local whose text contains one of those card numbers (as typed, or without its spaces and dashes) has
  the number replaced by stars, so ``value``, ``card``, ``cleaned_data`` or an APRAS URL do not show it.

Unlike Django's own cleansing, this also applies when ``DEBUG`` is on: the debug page may be shared in a bug report.
"""
import re

from django.conf import settings
from django.template.defaultfilters import pprint
from django.utils.module_loading import import_string
from django.views import debug

from .checkout import FIELD_NAME

#: POST parameter names that carry a card number
CARD_PARAMETER = re.compile(rf"(^|-)({re.escape(FIELD_NAME)}|card|card_number)$")
#: shorter values are not card numbers (and scrubbing them would blank unrelated text)
MIN_CARD_LENGTH = 6
SUBSTITUTE = debug.SafeExceptionReporterFilter.cleansed_substitute


def _card_values(request):
    post = getattr(request, "POST", None) if request is not None else None
    if not post:
        return []
    cards = set()
    for key in post:
        if CARD_PARAMETER.search(str(key)):
            for raw in post.getlist(key):
                raw = str(raw).strip()
                for candidate in (raw, re.sub(r"[\s\-]", "", raw)):
                    if len(candidate) >= MIN_CARD_LENGTH:
                        cards.add(candidate)
    return sorted(cards, key=len, reverse=True)


def _mask_parameters(multivaluedict):
    keys = [k for k in multivaluedict if CARD_PARAMETER.search(str(k))]
    if not keys:
        return multivaluedict
    masked = multivaluedict.copy()
    for k in keys:
        masked.setlist(k, [SUBSTITUTE])
    return masked


def _scrub(value, cards):
    text = value if isinstance(value, str) else None
    if text is None:
        try:
            text = pprint(value)  # what the report would show
        except Exception:  # pragma: no cover - pprint already guards against broken reprs
            return value
    if not any(c in text for c in cards):
        return value
    for c in cards:
        text = text.replace(c, SUBSTITUTE)
    return text


class CardNumberReporterFilterMixin:
    """Added in front of the configured exception reporter filter (see module docstring)."""

    def get_post_parameters(self, request):
        params = super().get_post_parameters(request)
        return _mask_parameters(params) if params else params

    def get_cleansed_multivaluedict(self, request, multivaluedict):
        return _mask_parameters(super().get_cleansed_multivaluedict(request, multivaluedict))

    def get_traceback_frame_variables(self, request, tb_frame):
        variables = super().get_traceback_frame_variables(request, tb_frame)
        cards = _card_values(request)
        if not cards:
            return variables
        return [(name, _scrub(value, cards)) for name, value in variables]


#: set by install(): the configured filter class with the mixin in front
CardNumberReporterFilter = None


def install():
    """Make the default exception reporter filter hide card numbers; idempotent."""
    global CardNumberReporterFilter

    configured = import_string(settings.DEFAULT_EXCEPTION_REPORTER_FILTER)
    if issubclass(configured, CardNumberReporterFilterMixin):
        return
    CardNumberReporterFilter = type("CardNumberReporterFilter", (CardNumberReporterFilterMixin, configured),
                                    {"__module__": __name__, "__doc__": CardNumberReporterFilterMixin.__doc__})
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = f"{__name__}.CardNumberReporterFilter"
    debug.get_default_exception_reporter_filter.cache_clear()
