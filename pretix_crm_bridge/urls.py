from django.urls import path, re_path

from pretix.multidomain import event_path

from . import docuseal_views, views
from .consent import BuyerConsentWithdrawView
from .docuseal_webhooks import DocuSealWebhookView
from .mautic_webhooks import MauticWebhookView
from .ninja_webhooks import InvoiceNinjaWebhookView

urlpatterns = [
    path("control/organizer/<str:organizer>/crm/", views.ConnectionsView.as_view(), name="connections"),
    path("control/organizer/<str:organizer>/crm/test/<str:system>/", views.ConnectionTestView.as_view(), name="connections.test"),
    path("control/organizer/<str:organizer>/crm/webhook-url/<str:system>/", views.WebhookUrlRegenerateView.as_view(),
         name="connections.webhook_url"),
    path("control/organizer/<str:organizer>/crm/invoiceninja-webhook/", views.NinjaWebhookRegisterView.as_view(),
         name="connections.ninja_register"),
    # the organisers' webhook URLs (an unguessable secret in the path); CSRF-exempt, POST only
    path("_crm/invoiceninja/<str:organizer_slug>/<str:secret>/", InvoiceNinjaWebhookView.as_view(), name="hook.invoiceninja"),
    path("_crm/mautic/<str:organizer_slug>/<str:secret>/", MauticWebhookView.as_view(), name="hook.mautic"),
    path("_crm/docuseal/<str:organizer_slug>/<str:secret>/", DocuSealWebhookView.as_view(), name="hook.docuseal"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/$", views.EventCrmSettingsView.as_view(), name="event.settings"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/mautic-fields/$", views.MauticFieldsView.as_view(),
            name="event.mautic_fields"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/orders/(?P<code>[0-9A-Z]+)/withdraw-consent/$",
            views.ConsentWithdrawView.as_view(), name="order.withdraw_consent"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/orders/(?P<code>[0-9A-Z]+)/signatures/(?P<position>[0-9]+)/resend/$",
            docuseal_views.ResendSignatureView.as_view(), name="order.signature_resend"),
]

event_patterns = [
    event_path("crm/order/<str:order>/<str:secret>/withdraw-consent/", BuyerConsentWithdrawView.as_view(), name="buyer.withdraw_consent"),
]
