from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('pretix_sortir', '0002_states_for_every_path'),
    ]

    operations = [
        migrations.AddField(
            model_name='cardusage',
            name='released_from',
            field=models.CharField(blank=True, default='', max_length=20),
        ),
    ]
