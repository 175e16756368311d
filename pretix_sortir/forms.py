from django import forms
from django.utils.translation import gettext_lazy as _

from pretix.base.forms import SettingsForm

from pretix_integrations_core.forms import EncryptedSecretField, EncryptedSecretsFormMixin
from pretix_integrations_core.httpclient import validate_service_url

from . import config


class SortirOrganizerSettingsForm(EncryptedSecretsFormMixin, SettingsForm):
    pretix_sortir_api_url = forms.URLField(
        label=_("APRAS API URL"), required=False, assume_scheme="https", validators=[validate_service_url],
        help_text=_("The address APRAS gave you, for example https://api.example.org"),
    )
    pretix_sortir_api_token_secret = EncryptedSecretField(
        label=_("APRAS API token"),
        help_text=_("Stored encrypted. It is never shown again: leave ***** to keep it, or type a new one."),
    )
    pretix_sortir_timeout = forms.IntegerField(
        label=_("Timeout"), min_value=1, max_value=10,
        help_text=_("Seconds a buyer waits at most for a card check, retries included (1 to 10)."),
    )
    pretix_sortir_prefill_names = forms.BooleanField(
        label=_("Pre-fill attendee names from APRAS"), required=False,
        help_text=_("Only for an APRAS account that returns the card holder's name with the card check (the standard "
                    "APRAS partner API does not): the name then becomes the ticket's attendee name. Leave it off otherwise."),
    )
    pretix_sortir_release_on_cancel = forms.BooleanField(
        label=_("Release the card when an order is cancelled"), required=False,
        help_text=_("The card can then be used again for the same event (cancelled, expired, denied or refunded orders)."),
    )
    pretix_sortir_usage_retention_days = forms.IntegerField(
        label=_("Keep usage details for"), min_value=1, max_value=3650,
        help_text=_("Days after the end of the event. Afterwards only anonymous counts are kept."),
    )
    pretix_sortir_audit_retention_days = forms.IntegerField(
        label=_("Keep audit entries for"), min_value=1, max_value=3650,
        help_text=_("Days. Log entries of the Sortir! plugin older than this are deleted."),
    )

    def clean(self):
        data = super().clean()
        if data.get(config.API_URL) and not data.get(config.API_TOKEN) and not self.has_error(config.API_TOKEN):
            self.add_error(config.API_TOKEN, _("Enter the API token that goes with this URL."))
        return data


class SortirProductsForm(forms.Form):
    """All products and variations of the event with a "requires a Sortir! card" box each."""

    def __init__(self, *args, event, **kwargs):
        from .models import SortirProduct

        self.event = event
        super().__init__(*args, **kwargs)
        flags = set(SortirProduct.objects.filter(event=event).values_list("item_id", "variation_id"))
        self.rows = []
        for item in event.items.prefetch_related("variations").order_by("category__position", "position", "pk"):
            name = f"item_{item.pk}"
            self.fields[name] = forms.BooleanField(label=str(item.name), required=False, initial=(item.pk, None) in flags)
            variations = []
            for v in item.variations.all():
                vname = f"variation_{v.pk}"
                self.fields[vname] = forms.BooleanField(label=str(v.value), required=False, initial=(item.pk, v.pk) in flags)
                variations.append(self[vname])
            self.rows.append((item, self[name], variations))
        self._flags = flags

    def save(self):
        """Store the flags; returns the changes for the log ({"added": [...], "removed": [...]})."""
        from .products import set_flags

        changed = {"added": [], "removed": []}
        for item, item_field, variation_fields in self.rows:
            whole = self.cleaned_data[item_field.name]
            chosen = [int(f.name.split("_")[1]) for f in variation_fields if self.cleaned_data[f.name]]
            new = {(item.pk, None)} if whole else {(item.pk, v) for v in chosen}
            old = {f for f in self._flags if f[0] == item.pk}
            if new != old:
                set_flags(self.event, item, whole, chosen)
                changed["added"] += [list(f) for f in sorted(new - old, key=str)]
                changed["removed"] += [list(f) for f in sorted(old - new, key=str)]
        return changed if changed["added"] or changed["removed"] else None


class SortirEventSettingsForm(SettingsForm):
    pretix_sortir_orders_without_card = forms.ChoiceField(
        label=_("Sortir! tickets without a card"), widget=forms.RadioSelect,
        choices=(
            ("refuse", _("Refuse them where pretix allows it (CSV import, a buyer's own order change)")),
            ("allow", _("Allow them: the ticket is flagged until a card is attached")),
        ),
        help_text=_("Tickets created outside the checkout (REST API, CSV import, order changes in the control panel) "
                    "have no card. The REST API and changes made in the control panel cannot be refused by a plugin: "
                    "their tickets are always flagged. Attach a card on the order page."),
    )


class AttachCardForm(forms.Form):
    card_number = forms.CharField(label=_("Sortir! card number"), max_length=40,
                                  widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "numeric"}))
