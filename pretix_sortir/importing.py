"""
pretix's CSV order import: a "Sortir! card number" column, checked with APRAS like at checkout.

pretix validates every row (``clean``) before it creates any order, then saves the orders in one
transaction (``save``). A card is checked in ``clean``; only its keyed hash, last four digits and the
encrypted APRAS service key travel on to ``save`` (the number itself is dropped at once).
"""
from django.utils.translation import gettext as _, gettext_lazy

from pretix.base.modelimport import DataImportError, ImportColumn

from .holds import CardError, digest, normalize, requires_card
from .missing import CheckedCard, check_card, create_validated, refuses_orders_without_card


class SortirCardColumn(ImportColumn):
    identifier = "pretix_sortir_card"
    verbose_name = gettext_lazy("Sortir! card number")
    help_text = gettext_lazy("For products that require a Sortir! card: the 10 digits of the card, checked with APRAS "
                             "during the import. Without it the ticket is imported without a card (and flagged) or refused, "
                             "as set in the event's Sortir! settings.")

    def __init__(self, event):
        super().__init__(event)
        self._row = 0
        self._seen = set()  # (date, card hash) of this file: one card per date, as at checkout

    def clean(self, value, previous_values):
        # Errors are raised as DataImportError, not ValidationError: pretix would print the raw value (the card
        # number) in its message.
        self._row += 1
        item, variation = previous_values.get("item"), previous_values.get("variation")
        if item is None or not requires_card(self.event, item.pk, variation.pk if variation else None):
            if value:
                raise self._error(_("this product does not require a Sortir! card."))
            return None
        if not value:
            if refuses_orders_without_card(self.event):
                raise self._error(_("the product “{item}” requires a Sortir! card number, and this event refuses "
                                    "tickets without a card (see the event's Sortir! settings).").format(item=item.name))
            return None
        subevent = previous_values.get("subevent")
        date = subevent.pk if subevent else 0
        last4 = "".join(c for c in str(value) if c.isdigit())[-4:]
        try:
            key = (date, digest(normalize(value)))
            if key in self._seen:
                raise self._error(_("card •••• {last4} appears twice in this file for the same date. Each ticket needs "
                                    "its own card.").format(last4=last4))
            checked = check_card(self.event, date, value)
        except CardError as e:
            raise self._error(_("card •••• {last4}: {message}").format(last4=last4, message=str(e)))
        self._seen.add(key)
        return checked

    def _error(self, message):
        return DataImportError(_("Sortir! card number in line {line}: {message}").format(line=self._row, message=message))

    def assign(self, value, order, position, invoice_address, **kwargs):
        position._sortir_card = value if isinstance(value, CheckedCard) else None

    def save(self, order):
        for position in getattr(order, "_positions", []):
            checked = getattr(position, "_sortir_card", None)
            if checked is not None:
                create_validated(order, position, checked, "import")
