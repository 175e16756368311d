"""Form fields for secrets stored encrypted in hierarkey settings."""
from django.utils.translation import gettext_lazy as _

from pretix.base.forms import SECRET_REDACTED, SecretKeySettingsField

from . import crypto


class EncryptedSecretField(SecretKeySettingsField):
    """
    A secret kept encrypted in a settings store.

    It renders as ``*****`` when a value is stored, never as the value (clear or encrypted). Submitting
    ``*****`` keeps the stored secret; an empty value removes it; anything else is encrypted on save.
    Name the settings key so that it contains ``secret`` (e.g. ``pretix_sortir_api_token_secret``):
    pretix then masks it in the settings-change log too.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", True)
        super().__init__(*args, **kwargs)


class EncryptedSecretsFormMixin:
    """
    Mix into a ``pretix.base.forms.SettingsForm`` that has ``EncryptedSecretField`` fields.

    ``self.secret_problems`` maps field names to a message when the stored value cannot be decrypted
    with the configured keys (the message is also shown on the field), so the control panel tells the
    organiser to enter the secret again instead of failing later.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.secret_problems = {}
        for name, field in self._encrypted_fields():
            stored = self.initial.get(name)
            if not stored:
                self.initial[name] = ""
                continue
            try:
                crypto.decrypt(stored)
            except crypto.SecretError as e:
                self.secret_problems[name] = str(e)
                field.help_text = str(e)
                self.initial[name] = ""
            else:
                self.initial[name] = SECRET_REDACTED

    def _encrypted_fields(self):
        return [(n, f) for n, f in self.fields.items() if isinstance(f, EncryptedSecretField)]

    def clean(self):
        data = super().clean()
        for name, field in self._encrypted_fields():
            value = data.get(name)
            stored = self._s.get(name, as_type=str, default=None)
            if value == SECRET_REDACTED:
                if stored and name not in self.secret_problems:
                    data[name] = stored  # unchanged: HierarkeyForm.save() skips equal values
                else:
                    self.add_error(name, _("Please enter the secret again."))
            elif value:
                try:
                    data[name] = crypto.encrypt(value)
                except crypto.SecretError as e:
                    self.add_error(name, str(e))
            else:
                data[name] = None  # cleared: the key is deleted
        return data


class EncryptingSecretField(EncryptedSecretField):
    """
    An :class:`EncryptedSecretField` that encrypts by itself, for forms that cannot use :class:`EncryptedSecretsFormMixin`
    (e.g. pretix's global settings form, extended through ``register_global_settings``). pretix's ``SettingsForm`` keeps
    the stored (encrypted) value when ``*****`` is submitted.
    """

    def clean(self, value):
        from django.core.exceptions import ValidationError

        value = super().clean(value)
        if value and value != SECRET_REDACTED and not crypto.is_encrypted(value):
            try:
                return crypto.encrypt(value)
            except crypto.SecretError as e:
                raise ValidationError(str(e))
        return value
