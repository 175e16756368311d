from django.urls import path, re_path

from pretix.api.urls import event_router
from pretix.multidomain import event_path

from . import api, storefront, views

urlpatterns = [
    path("control/organizer/<str:organizer>/sortir/", views.OrganizerSettingsView.as_view(), name="organizer.settings"),
    path("control/organizer/<str:organizer>/sortir/test/", views.OrganizerConnectionTestView.as_view(), name="organizer.test"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/sortir/products/$", views.ProductsView.as_view(), name="products"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/sortir/usages/$", views.UsageListView.as_view(), name="usages"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/sortir/usages/(?P<usage>\d+)/resend/$",
            views.UsageResendView.as_view(), name="usages.resend"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/sortir/usages/(?P<usage>\d+)/done/$",
            views.UsageMarkDoneView.as_view(), name="usages.done"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/sortir/usages/(?P<usage>\d+)/attach/$",
            views.UsageAttachCardView.as_view(), name="usages.attach"),
    re_path(r"^control/event/(?P<organizer>[^/]+)/(?P<event>[^/]+)/sortir/settings/$", views.EventSettingsView.as_view(),
            name="event.settings"),
]

event_patterns = [
    event_path("sortir/check/", storefront.CardCheckView.as_view(), name="check"),
]

event_router.register(r"sortir_usages", api.CardUsageViewSet, basename="sortir-usages")
