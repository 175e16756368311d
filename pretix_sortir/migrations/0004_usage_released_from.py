from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('pretix_sortir', '0003_active_on_organizers'),
    ]

    operations = [
        migrations.AddField(
            model_name='cardusage',
            name='released_from',
            field=models.CharField(blank=True, default='', max_length=20),
        ),
    ]
