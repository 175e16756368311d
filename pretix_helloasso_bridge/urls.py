from django.urls import path, re_path

from pretix.api.urls import event_router

from . import api, views
from .webhooks import HelloAssoWebhookView

EV = r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/helloasso/"

urlpatterns = [
    path("control/organizer/<str:organizer>/helloasso/", views.OrganizerSettingsView.as_view(), name="organizer.settings"),
    path("control/organizer/<str:organizer>/helloasso/test/", views.OrganizerConnectionTestView.as_view(), name="organizer.test"),
    path("control/organizer/<str:organizer>/helloasso/billetweb/", views.BilletwebSettingsView.as_view(), name="organizer.billetweb"),
    path("control/organizer/<str:organizer>/helloasso/billetweb/test/", views.BilletwebConnectionTestView.as_view(),
         name="organizer.billetweb.test"),
    path("control/organizer/<str:organizer>/helloasso/weezevent/", views.WeezeventSettingsView.as_view(), name="organizer.weezevent"),
    path("control/organizer/<str:organizer>/helloasso/weezevent/test/", views.WeezeventConnectionTestView.as_view(),
         name="organizer.weezevent.test"),
    re_path(EV + r"$", views.EventView.as_view(), name="event"),
    re_path(EV + r"link/$", views.LinkView.as_view(), name="event.link"),
    re_path(EV + r"unlink/$", views.UnlinkView.as_view(), name="event.unlink"),
    re_path(EV + r"options/$", views.OptionsView.as_view(), name="event.options"),
    re_path(EV + r"sync/$", views.SyncNowView.as_view(), name="event.sync"),
    path("_helloasso/webhook/<int:event_id>/<str:secret>/", HelloAssoWebhookView.as_view(), name="webhook"),
]

event_router.register(r"helloasso_syncs", api.SyncReportViewSet, basename="helloasso-syncs")
