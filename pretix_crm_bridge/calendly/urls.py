from django.urls import path

from . import views
from .webhooks import CalendlyWebhookView

ORG = "control/organizer/<str:organizer>/"

urlpatterns = [
    path(ORG + "crm/calendly/", views.CalendlyView.as_view(), name="calendly"),
    path(ORG + "crm/calendly/connect/", views.ConnectView.as_view(), name="calendly.connect"),
    path(ORG + "crm/calendly/token/", views.PersonalTokenView.as_view(), name="calendly.token"),
    path(ORG + "crm/calendly/disconnect/", views.DisconnectView.as_view(), name="calendly.disconnect"),
    path(ORG + "crm/calendly/sync/", views.SyncNowView.as_view(), name="calendly.sync"),
    path(ORG + "crm/calendly/options/", views.OptionsView.as_view(), name="calendly.options"),
    # one redirect URI for the whole pretix (Calendly checks it exactly); the state says which organiser it is for
    path("control/crm/calendly/callback/", views.CallbackView.as_view(), name="calendly.callback"),
    path(ORG + "prospects/", views.ProspectListView.as_view(), name="prospects"),
    path(ORG + "prospects/<int:prospect>/", views.ProspectDetailView.as_view(), name="prospects.detail"),
    path(ORG + "prospects/<int:prospect>/delete/", views.ProspectDeleteView.as_view(), name="prospects.delete"),
    # like the CRM bridge's other webhook URLs (webhook_secrets.py); CSRF-exempt, POST only
    path("_crm/calendly/<str:organizer_slug>/<str:secret>/", CalendlyWebhookView.as_view(), name="hook.calendly"),
]
