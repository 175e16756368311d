"""
Each Sortir! ticket is listed with its own masked card on the review page and the order pages:

- Sortir! products become personalized admission tickets (pretix lists those one per line with their answers);
- the hold's reference leaves the displayed answer ("•••••• 7890|<uuid>" → "•••••• 7890") for the position's
  own meta_info (``{"pretix_sortir": {"reference": ...}}``).
"""
import json

from django.db import migrations

FIELD_NAME = "pretix_sortir_card"
META_KEY = "pretix_sortir"


def forwards(apps, schema_editor):
    SortirProduct = apps.get_model("pretix_sortir", "SortirProduct")
    Item = apps.get_model("pretixbase", "Item")
    item_ids = set(SortirProduct.objects.values_list("item_id", flat=True))
    if item_ids:
        Item.objects.filter(pk__in=item_ids).update(admission=True, personalized=True)

    for model in ("CartPosition", "OrderPosition"):
        Position = apps.get_model("pretixbase", model)
        manager = Position._base_manager  # plain manager: every position, canceled ones included
        for pk, meta_info in manager.filter(meta_info__contains=FIELD_NAME).values_list("pk", "meta_info").iterator():
            try:
                data = json.loads(meta_info)
            except (TypeError, ValueError):
                continue
            answers = data.get("question_form_data") or {}
            value = answers.get(FIELD_NAME)
            if not isinstance(value, str) or "|" not in value:
                continue
            display, reference = value.split("|", 1)
            answers[FIELD_NAME] = display
            data[META_KEY] = {**(data.get(META_KEY) or {}), "reference": reference}
            manager.filter(pk=pk).update(meta_info=json.dumps(data))


class Migration(migrations.Migration):

    dependencies = [
        ("pretix_sortir", "0004_usage_released_from"),
        ("pretixbase", "0311_fix_unshredded_invoices"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
