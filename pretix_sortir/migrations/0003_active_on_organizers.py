"""
Sortir! became an event-and-organiser plugin (its organiser settings page needs it, see apps.py): keep it working
for every organiser that already uses it on an event, as pretix's own hybrid plugins did when they switched.
"""
from django.db import migrations

PLUGIN = "pretix_sortir"


def activate_on_organizers(apps, schema_editor):
    Organizer = apps.get_model("pretixbase", "Organizer")
    Event = apps.get_model("pretixbase", "Event")
    organizer_ids = {
        e.organizer_id for e in Event.objects.filter(plugins__contains=PLUGIN).only("organizer_id", "plugins")
        if PLUGIN in (e.plugins or "").split(",")
    }
    for org in Organizer.objects.filter(pk__in=organizer_ids):
        active = [p for p in (org.plugins or "").split(",") if p]
        if PLUGIN not in active:
            org.plugins = ",".join(active + [PLUGIN])
            org.save(update_fields=["plugins"])


class Migration(migrations.Migration):
    dependencies = [
        ("pretix_sortir", "0002_states_for_every_path"),
        ("pretixbase", "0311_fix_unshredded_invoices"),
    ]

    operations = [
        migrations.RunPython(activate_on_organizers, migrations.RunPython.noop),
    ]
