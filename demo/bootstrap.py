"""
Demo data of ``make run``: an organiser, an admin login and a live event with the three plugins enabled.

Everything here is idempotent: the first call creates what is missing, later calls only make sure that the
admin can still log in and that the plugins are still enabled; they never duplicate or overwrite what the
organiser changed in the demo (tickets, quotas, texts). Call it with Django set up (``demo/run.py`` does).
"""
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils.timezone import now
from django_scopes import scopes_disabled
from i18nfield.strings import LazyI18nString

from pretix.base.models import Event, Item, Organizer, Team, User
from pretix.base.settings import GlobalSettingsObject

from pretix_integrations_core import crypto

ORGANIZER_SLUG = "demo"
EVENT_SLUG = "demo"
ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "admin"
TEAM_NAME = "Administrators (demo)"
TIMEZONE = "Europe/Paris"
LOCALES = ["fr", "en"]
#: the suite's visible plugins, enabled on the demo event
DEMO_PLUGINS = ("pretix_sortir", "pretix_helloasso_bridge", "pretix_crm_bridge")
#: bank transfer works offline (the buyer gets the bank details, the organiser marks the order as paid)
PAYMENT_PLUGIN = "pretix.plugins.banktransfer"

# Organizer settings of the Sortir! plugin (pretix_sortir/config.py)
SORTIR_API_URL = "pretix_sortir_api_url"
SORTIR_API_TOKEN = "pretix_sortir_api_token_secret"
SORTIR_PREFILL_NAMES = "pretix_sortir_prefill_names"


@dataclass
class DemoObjects:
    organizer: Organizer
    event: Event
    user: User
    team: Team
    created: list


def _i18n(fr, en):
    return LazyI18nString({"fr": fr, "en": en})


def _ensure_organizer(created):
    organizer = Organizer.objects.filter(slug=ORGANIZER_SLUG).first()
    if organizer is None:
        organizer = Organizer.objects.create(slug=ORGANIZER_SLUG, name="Association Démo")
        organizer.settings.locale = LOCALES[0]
        organizer.settings.locales = LOCALES
        organizer.settings.timezone = TIMEZONE
        created.append("organizer")
        # The APRAS simulator returns a holder name for one demo card (a real APRAS account may not): show it off.
        organizer.settings.set(SORTIR_PREFILL_NAMES, True)
    # Event-and-organiser (hybrid) plugins, bank transfer and Sortir!, must be active on the organiser too.
    missing = [m for m in (PAYMENT_PLUGIN, *DEMO_PLUGINS) if _is_organizer_level(m) and m not in organizer.get_plugins()]
    for module in missing:
        organizer.enable_plugin(module, allow_restricted=[module])
    if missing:
        organizer.save(update_fields=["plugins"])
    return organizer


def _is_organizer_level(module):
    from pretix.base.plugins import PLUGIN_LEVEL_EVENT

    app = apps.get_containing_app_config(module)
    return app is not None and getattr(app.PretixPluginMeta, "level", PLUGIN_LEVEL_EVENT) != PLUGIN_LEVEL_EVENT


def _ensure_admin(organizer, created):
    user = User.objects.filter(email__iexact=ADMIN_EMAIL).first()
    if user is None:
        # The password is set only when the account is created: a changed password survives later runs.
        user = User.objects.create_user(
            ADMIN_EMAIL, ADMIN_PASSWORD, fullname="Demo admin", is_staff=True, is_verified=True,
            locale=LOCALES[0], timezone=TIMEZONE,
        )
        created.append("admin")
    elif not (user.is_staff and user.is_active):
        user.is_staff = user.is_active = True
        user.save(update_fields=["is_staff", "is_active"])

    team = Team.objects.filter(organizer=organizer, name=TEAM_NAME).first()
    if team is None:
        team = Team.objects.create(
            organizer=organizer, name=TEAM_NAME,
            all_events=True, all_event_permissions=True, all_organizer_permissions=True,
        )
        created.append("team")
    elif not (team.all_events and team.all_event_permissions and team.all_organizer_permissions):
        team.all_events = team.all_event_permissions = team.all_organizer_permissions = True
        team.save(update_fields=["all_events", "all_event_permissions", "all_organizer_permissions"])
    if not team.members.filter(pk=user.pk).exists():
        team.members.add(user)
    return user, team


def _create_event(organizer):
    """What pretix's event wizard does (control/views/main.py), plus tickets, a quota and bank transfer."""
    tz = ZoneInfo(TIMEZONE)
    start = (now().astimezone(tz) + timedelta(days=30)).replace(hour=20, minute=0, second=0, microsecond=0)
    event = Event.objects.create(
        organizer=organizer, slug=EVENT_SLUG, currency="EUR",
        name=_i18n("Concert de démonstration", "Demo concert"),
        location=_i18n("Salle des fêtes, Rennes", "Town hall, Rennes"),
        date_from=start, date_to=start + timedelta(hours=2), live=False,
    )
    defaults = [p for p in settings.PRETIX_PLUGINS_DEFAULT.split(",") if p]
    event.set_active_plugins(defaults, allow_restricted=defaults)
    event.save(update_fields=["plugins"])
    event.checkin_lists.create(name="Default", all_products=True)
    event.set_defaults()
    event.settings.timezone = TIMEZONE
    event.settings.locale = LOCALES[0]
    event.settings.locales = LOCALES
    event.settings.contact_mail = ADMIN_EMAIL

    event.settings.payment_banktransfer__enabled = True
    event.settings.payment_banktransfer_bank_details_type = "sepa"
    event.settings.payment_banktransfer_bank_details_sepa_name = "Association Démo"
    event.settings.payment_banktransfer_bank_details_sepa_iban = "FR7630006000011234567890189"
    event.settings.payment_banktransfer_bank_details_sepa_bic = "AGRIFRPPXXX"
    event.settings.payment_banktransfer_bank_details_sepa_bank = "Banque de démonstration"

    quota = event.quotas.create(name="Salle", size=100)
    tickets = [
        (_i18n("Entrée libre (gratuite)", "Free admission"), Decimal("0.00"), None),
        (_i18n("Plein tarif", "Full price"), Decimal("16.00"), None),
        (_i18n("Tarif Sortir!", "Sortir! rate"), Decimal("4.50"),
         _i18n("Réservé aux détenteurs d'une carte Sortir! (KorriGo) valide.",
               "For holders of a valid Sortir! (KorriGo) card.")),
    ]
    for position, (name, price, description) in enumerate(tickets):
        item = Item.objects.create(event=event, name=name, default_price=price, admission=True, position=position,
                                   description=description)
        quota.items.add(item)
    event.live = True
    event.save(update_fields=["live"])
    return event


def _offline_instance():
    """The demo works offline: no update check calling pretix.eu (pretix asks staff to acknowledge it otherwise)."""
    gs = GlobalSettingsObject().settings
    if not gs.get("update_check_ack", as_type=bool):
        gs.set("update_check_perform", False)
        gs.set("update_check_ack", True)


def _ensure_sortir_product(event):
    """The "Tarif Sortir!" ticket asks for a Sortir! card (idempotent, also for demo data made before this existed)."""
    from pretix_sortir.models import SortirProduct
    from pretix_sortir.products import personalize, set_flags

    item = event.items.filter(default_price=Decimal("4.50")).first()
    if item is None:
        return
    if not SortirProduct.objects.filter(item=item).exists():
        set_flags(event, item, whole_item=True, variation_ids=[])  # as the product page does
    personalize(item)  # demo data made before Sortir! tickets were listed one per line


def bootstrap_demo() -> DemoObjects:
    """Create (once) the demo organiser, admin, team and event; make sure the demo plugins are enabled."""
    created = []
    with scopes_disabled(), transaction.atomic():
        _offline_instance()
        organizer = _ensure_organizer(created)
        user, team = _ensure_admin(organizer, created)
        event = Event.objects.filter(organizer=organizer, slug=EVENT_SLUG).first()
        if event is None:
            event = _create_event(organizer)
            created.append("event")
        _ensure_sortir_product(event)
        missing = [m for m in (PAYMENT_PLUGIN, *DEMO_PLUGINS) if m not in event.get_plugins()]
        for module in missing:
            event.enable_plugin(module, allow_restricted=[module])
        if missing:
            event.save(update_fields=["plugins"])
    return DemoObjects(organizer=organizer, event=event, user=user, team=team, created=created)


def configure_sortir(organizer, api_url, token):
    """Point the organiser's Sortir! settings at ``api_url``; the token is stored encrypted (needs the config key)."""
    s = organizer.settings
    if s.get(SORTIR_API_URL, as_type=str, default="") != api_url:
        s.set(SORTIR_API_URL, api_url)
    try:
        current = crypto.get_secret(s, SORTIR_API_TOKEN)
    except crypto.SecretUndecryptable:  # e.g. encrypted with a key that is no longer configured
        current = None
    if current != token:  # re-encrypting at every start would change the stored value for nothing
        crypto.set_secret(s, SORTIR_API_TOKEN, token)


def configure_helloasso(organizer, api_url, token=None):
    """
    Point the organiser's HelloAsso settings at the simulator's ``api_url``: its demo client id and organisation, the
    client secret stored encrypted as the settings form stores it. Values the organiser changed since are kept.
    """
    from pretix_helloasso_bridge import config
    from pretix_integrations_core.testing.helloasso import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_ORGANIZATION

    s = organizer.settings
    if s.get(config.CLIENT_ID, as_type=str) and s.get(config.CLIENT_ID, as_type=str) != DEMO_CLIENT_ID:
        return  # the organiser entered their own (sandbox) account: leave it alone
    for key, value in ((config.CLIENT_ID, DEMO_CLIENT_ID), (config.ORGANIZATION, DEMO_ORGANIZATION), (config.BASE_URL, api_url)):
        if s.get(key, as_type=str, default="") != value:
            s.set(key, value)
    try:
        current = crypto.get_secret(s, config.CLIENT_SECRET)
    except crypto.SecretUndecryptable:
        current = None
    if current != DEMO_CLIENT_SECRET:  # re-encrypting at every start would change the stored value for nothing
        crypto.set_secret(s, config.CLIENT_SECRET, DEMO_CLIENT_SECRET)


def configure_calendly(organizer, api_url, token=None):
    """
    Make this pretix's Calendly OAuth application the simulator's (pretix-wide settings, as an administrator sets them):
    "Connect Calendly" on the organiser's Calendly page then goes through the simulator's consent page. Values an
    administrator set for a real Calendly application are kept.
    """
    from pretix_crm_bridge.calendly import config
    from pretix_integrations_core.testing.calendly import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    if config.get("calendly_client_id") not in ("", DEMO_CLIENT_ID):
        return
    for option, value in (("calendly_client_id", DEMO_CLIENT_ID), ("calendly_api_url", api_url), ("calendly_auth_url", api_url)):
        if config.get(option) != value:
            config.set_global(option, value)
    if config.get("calendly_client_secret") != DEMO_CLIENT_SECRET:  # re-encrypting at every start would change it for nothing
        config.set_global("calendly_client_secret", DEMO_CLIENT_SECRET)


# -- CRM bridge: the organiser connected to the Mautic and Invoice Ninja simulators, the demo event feeding them --------

#: what the demo event sends to the simulators: ids that exist in them (FakeMautic's segment 1 "pretix buyers" for
#: every order, campaign 1 "Welcome" for a first purchase)
CRM_DEMO_EVENT_SETTINGS = {
    "mautic": {"pretix_crm_bridge_mautic_enabled": True, "pretix_crm_bridge_mautic_segments_placed": "1",
               "pretix_crm_bridge_mautic_campaigns_welcome": "1"},
    "invoiceninja": {"pretix_crm_bridge_invoiceninja_enabled": True},
}
#: set on the demo event once it was made to feed a system: what the organiser changes later is kept
CRM_DEMO_MARK = "pretix_crm_bridge_demo_fed_{system}"


def _crm_connection(organizer, system, url):
    """(setting keys and plain values, secret key, secret value) of the organiser's connection to a CRM simulator."""
    from pretix_crm_bridge import config
    if system == "mautic":
        from pretix_integrations_core.testing.mautic import DEMO_PASSWORD, DEMO_USERNAME
        return ({config.MAUTIC_URL: url, config.MAUTIC_AUTH: config.AUTH_BASIC, config.MAUTIC_USERNAME: DEMO_USERNAME},
                config.MAUTIC_PASSWORD, DEMO_PASSWORD)
    from pretix_integrations_core.testing.invoiceninja import DEMO_API_TOKEN
    return {config.NINJA_URL: url}, config.NINJA_TOKEN, DEMO_API_TOKEN


def configure_crm(organizer, system, url):
    """
    Connect the demo organiser to the ``system`` simulator at ``url`` (as the organiser's CRM connections page
    stores it: the credential encrypted), and make the demo event feed it, once. An organiser who pointed the
    connection elsewhere keeps their own; nothing is re-encrypted at every start.
    """
    plain, secret_key, secret_value = _crm_connection(organizer, system, url)
    s = organizer.settings
    url_key = next(iter(plain))
    if s.get(url_key, as_type=str) and s.get(url_key, as_type=str) != url:
        return  # the organiser connected their own instance: leave it alone
    for key, value in plain.items():
        if s.get(key, as_type=str, default="") != value:
            s.set(key, value)
    try:
        current = crypto.get_secret(s, secret_key)
    except crypto.SecretUndecryptable:
        current = None
    if current != secret_value:
        crypto.set_secret(s, secret_key, secret_value)
    with scopes_disabled():
        event = Event.objects.filter(organizer=organizer, slug=EVENT_SLUG).first()
    mark = CRM_DEMO_MARK.format(system=system)
    if event is not None and not event.settings.get(mark, as_type=bool, default=False):
        for key, value in CRM_DEMO_EVENT_SETTINGS[system].items():
            event.settings.set(key, value)
        event.settings.set(mark, True)


def configure_mautic(organizer, api_url, token=None):
    configure_crm(organizer, "mautic", api_url)


def configure_invoiceninja(organizer, api_url, token=None):
    configure_crm(organizer, "invoiceninja", api_url)


def configure_docuseal(organizer, api_url, token=None):
    """
    Connect the demo organiser to the DocuSeal simulator (API key and webhook signing secret stored encrypted, as the
    connections form stores them), let the demo event ask for signatures with the simulator's demo template, and make
    its full-price ticket require one: marking a demo order with that ticket paid shows the signing link on the order
    page. Values the organiser changed since (another DocuSeal, another template, products) are kept.

    Returns the organiser's DocuSeal webhook URL, for the simulator to send its signed ``form.*`` notifications to
    (None when the organiser connected another DocuSeal).
    """
    from pretix_crm_bridge import config
    from pretix_crm_bridge.models import SignatureProduct
    from pretix_integrations_core.testing.docuseal import DEMO_API_KEY, DEMO_HMAC_SECRET, DEMO_TEMPLATE_ID

    s = organizer.settings
    current_url = s.get(config.DOCUSEAL_URL, as_type=str, default="")
    if current_url and not current_url.startswith("http://127.0.0.1:"):
        return None  # the organiser connected their own DocuSeal: leave it alone
    if current_url != api_url:
        s.set(config.DOCUSEAL_URL, api_url)
    for key, value in ((config.DOCUSEAL_API_KEY, token or DEMO_API_KEY), (config.DOCUSEAL_HMAC_SECRET, DEMO_HMAC_SECRET)):
        try:
            current = crypto.get_secret(s, key)
        except crypto.SecretUndecryptable:
            current = None
        if current != value:  # re-encrypting at every start would change the stored value for nothing
            crypto.set_secret(s, key, value)
    with scopes_disabled():
        event = Event.objects.filter(organizer=organizer, slug=EVENT_SLUG).first()
        if event is not None and not event.settings.get(config.DOCUSEAL_TEMPLATE):  # once: later changes stay
            event.settings.set(config.DOCUSEAL_ENABLED, True)
            event.settings.set(config.DOCUSEAL_TEMPLATE, str(DEMO_TEMPLATE_ID))
            item = event.items.filter(default_price=Decimal("16.00")).first()
            if item is not None and not SignatureProduct.objects.filter(event=event).exists():
                SignatureProduct.objects.create(event=event, item=item)
    from pretix_crm_bridge.webhook_secrets import hook_url
    return hook_url(organizer, "docuseal")


# -- Billetweb and Weezevent: their simulators, and one demo event each, linked to the simulator's event ----------------

BILLETWEB_EVENT_SLUG = "billetweb"
WEEZEVENT_EVENT_SLUG = "weezevent"


def _platform_demo_event(organizer, slug, name, provider, remote_event):
    """A demo event importing the platform's event (idempotent): the first periodic sync or "Sync now" imports it."""
    from pretix_helloasso_bridge.models import FormLink

    with scopes_disabled(), transaction.atomic():
        event = Event.objects.filter(organizer=organizer, slug=slug).first()
        if event is None:
            start = (now().astimezone(ZoneInfo(TIMEZONE)) + timedelta(days=30)).replace(hour=20, minute=0, second=0, microsecond=0)
            event = Event.objects.create(organizer=organizer, slug=slug, currency="EUR", name=name, date_from=start, live=False)
            event.set_defaults()
            event.settings.timezone = TIMEZONE
            event.settings.locale = LOCALES[0]
            event.settings.locales = LOCALES
            event.checkin_lists.create(name="Default", all_products=True)
        if "pretix_helloasso_bridge" not in event.get_plugins():
            event.enable_plugin("pretix_helloasso_bridge", allow_restricted=["pretix_helloasso_bridge"])
            event.save(update_fields=["plugins"])
        if not FormLink.objects.filter(event=event).exists():
            FormLink.objects.create(event=event, provider=provider, form_ref=remote_event)
    return event


def _set_secret_once(s, key, value):
    try:
        current = crypto.get_secret(s, key)
    except crypto.SecretUndecryptable:
        current = None
    if current != value:  # re-encrypting at every start would change the stored value for nothing
        crypto.set_secret(s, key, value)


def configure_billetweb(organizer, api_url, token=None):
    """Point the organiser's Billetweb settings at the simulator (unless they hold another account) and create its demo event."""
    from pretix_helloasso_bridge import config
    from pretix_integrations_core.testing.billetweb import DEMO_EVENT, DEMO_KEY, DEMO_USER

    s = organizer.settings
    if not s.get(config.BILLETWEB_USER, as_type=str) or s.get(config.BILLETWEB_USER, as_type=str) == DEMO_USER:
        for key, value in ((config.BILLETWEB_USER, DEMO_USER), (config.BILLETWEB_URL, api_url)):
            if s.get(key, as_type=str, default="") != value:
                s.set(key, value)
        _set_secret_once(s, config.BILLETWEB_KEY, DEMO_KEY)
    return _platform_demo_event(organizer, BILLETWEB_EVENT_SLUG, _i18n("Gala (importé de Billetweb)", "Gala (imported from Billetweb)"),
                                "billetweb", DEMO_EVENT)


def configure_weezevent(organizer, api_url, token=None):
    """Point the organiser's Weezevent settings at the simulator (unless they hold another account) and create its demo event."""
    from pretix_helloasso_bridge import config
    from pretix_integrations_core.testing.weezevent import DEMO_API_KEY, DEMO_EVENT, DEMO_PASSWORD, DEMO_USERNAME

    s = organizer.settings
    if not s.get(config.WEEZEVENT_USERNAME, as_type=str) or s.get(config.WEEZEVENT_USERNAME, as_type=str) == DEMO_USERNAME:
        for key, value in ((config.WEEZEVENT_USERNAME, DEMO_USERNAME), (config.WEEZEVENT_URL, api_url)):
            if s.get(key, as_type=str, default="") != value:
                s.set(key, value)
        _set_secret_once(s, config.WEEZEVENT_API_KEY, DEMO_API_KEY)
        _set_secret_once(s, config.WEEZEVENT_PASSWORD, DEMO_PASSWORD)
    return _platform_demo_event(organizer, WEEZEVENT_EVENT_SLUG, _i18n("Festival (importé de Weezevent)", "Festival (imported from Weezevent)"),
                                "weezevent", DEMO_EVENT)
