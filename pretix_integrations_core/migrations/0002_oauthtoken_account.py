from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('pretix_integrations_core', '0001_oauth_tokens_and_webhook_deliveries'),
    ]

    operations = [
        migrations.AddField(
            model_name='oauthtoken',
            name='account',
            field=models.CharField(blank=True, default='', max_length=190),
        ),
        migrations.RemoveConstraint(
            model_name='oauthtoken',
            name='integrations_oauthtoken_unique',
        ),
        migrations.AddConstraint(
            model_name='oauthtoken',
            constraint=models.UniqueConstraint(fields=('service', 'client_id', 'account'), name='integrations_oauthtoken_account_unique'),
        ),
    ]
