"""REST API: /api/v1/organizers/<o>/events/<e>/helloasso_syncs/ (reports; POST starts a sync)."""
from django.db import transaction
from django.http import Http404
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response

from .models import FormLink, SyncReport
from .tasks import start_sync


class SyncReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncReport
        fields = ("id", "trigger", "full", "state", "started", "finished", "orders_created", "orders_updated", "orders_cancelled",
                  "orders_refunded", "orders_seen", "skipped", "warnings", "api_calls", "duration", "error")


class SyncReportViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = SyncReportSerializer
    permission = "event.orders:read"
    write_permission = "event.orders:write"
    filterset_fields = ()

    def get_queryset(self):
        # API routes are not gated by plugin activation in pretix: do it here.
        if "pretix_helloasso_bridge" not in self.request.event.get_plugins():
            raise Http404()
        return SyncReport.objects.filter(event=self.request.event).order_by("-started", "-pk")

    def create(self, request, *args, **kwargs):
        self.get_queryset()
        link = FormLink.objects.filter(event=request.event).first()
        if not link:
            return Response({"detail": "This event is not linked to a ticketing platform."}, status=status.HTTP_400_BAD_REQUEST)
        if link.running_since:
            return Response({"detail": "A sync is already running."}, status=status.HTTP_409_CONFLICT)
        with transaction.atomic():
            report = start_sync(request.event, trigger="api", full=bool(request.data.get("full")))
        report.refresh_from_db()
        return Response(self.get_serializer(report).data, status=status.HTTP_202_ACCEPTED)
