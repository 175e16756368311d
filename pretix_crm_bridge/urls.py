from django.urls import path, re_path

from . import docuseal_views, views
from .docuseal_webhooks import DocuSealWebhookView

urlpatterns = [
    path("control/organizer/<str:organizer>/crm/", views.ConnectionsView.as_view(), name="connections"),
    path("control/organizer/<str:organizer>/crm/test/<str:system>/", views.ConnectionTestView.as_view(), name="connections.test"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/$", views.EventCrmSettingsView.as_view(), name="event.settings"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/mautic-fields/$", views.MauticFieldsView.as_view(),
            name="event.mautic_fields"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/orders/(?P<code>[0-9A-Z]+)/withdraw-consent/$",
            views.ConsentWithdrawView.as_view(), name="order.withdraw_consent"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/crm/orders/(?P<code>[0-9A-Z]+)/signatures/(?P<position>[0-9]+)/resend/$",
            docuseal_views.ResendSignatureView.as_view(), name="order.signature_resend"),
    path("_docuseal/webhook/<int:organizer_id>/<str:secret>/", DocuSealWebhookView.as_view(), name="docuseal.webhook"),
]
