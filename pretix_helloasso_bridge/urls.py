from django.urls import path

from . import views

urlpatterns = [
    path("control/organizer/<str:organizer>/helloasso/", views.OrganizerSettingsView.as_view(), name="organizer.settings"),
    path("control/organizer/<str:organizer>/helloasso/test/", views.OrganizerConnectionTestView.as_view(), name="organizer.test"),
]
