"""Which products and variations require a Sortir! card: the form on the product page, and copying."""
from django import forms
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from .models import SortirProduct


def set_flags(event, item, whole_item: bool, variation_ids):
    with transaction.atomic():
        SortirProduct.objects.filter(item=item).delete()
        if whole_item:
            SortirProduct.objects.create(event=event, item=item)
        else:
            for v in item.variations.filter(pk__in=variation_ids):
                SortirProduct.objects.create(event=event, item=item, variation=v)
        if whole_item or SortirProduct.objects.filter(item=item).exists():
            personalize(item)


def personalize(item):
    """
    A Sortir! ticket is an admission ticket for one person. pretix lists the tickets of a personalized admission
    product one per line (with their answers) on the review page and the order pages, instead of merging
    identical tickets into "× 2": so each ticket shows its own card.
    """
    if item.pk and not (item.admission and item.personalized):
        item.admission = item.personalized = True
        type(item).objects.filter(pk=item.pk).update(admission=True, personalized=True)
        item.event.cache.clear()


class SortirItemForm(forms.Form):
    title = _("Sortir! social tariff")

    def __init__(self, *args, event, item, **kwargs):
        self.event = event
        self.item = item
        flags = {p.variation_id for p in SortirProduct.objects.filter(item=item)}
        initial = {"requires_card": None in flags, "variations": [v for v in flags if v is not None]}
        super().__init__(*args, initial=initial, **kwargs)
        self.fields["requires_card"] = forms.BooleanField(
            label=_("Requires a Sortir! card"), required=False,
            help_text=_("Each ticket of this product asks for its own Sortir! card number, checked with APRAS. "
                        "The product becomes a personalized admission ticket, so each ticket is listed with its own "
                        "card on the review page and the order pages."),
        )
        if item.pk and item.has_variations:
            self.fields["variations"] = forms.ModelMultipleChoiceField(
                label=_("Only these variations require a Sortir! card"), required=False,
                queryset=item.variations.all(), widget=forms.CheckboxSelectMultiple,
                help_text=_("Used when the whole product is not ticked above."),
            )

    def save(self):
        variations = self.cleaned_data.get("variations") or []
        set_flags(self.event, self.item, self.cleaned_data["requires_card"], [v.pk for v in variations])


def copy_item_flags(source, target, event, variation_map=None):
    for p in SortirProduct.objects.filter(item=source):
        if p.variation_id is None:
            SortirProduct.objects.create(event=event, item=target)
        else:
            variation = (variation_map or {}).get(p.variation_id) or target.variations.filter(value=p.variation.value).first()
            if variation:
                SortirProduct.objects.create(event=event, item=target, variation=variation)
