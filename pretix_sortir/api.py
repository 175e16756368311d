"""Read-only REST API: /api/v1/organizers/<o>/events/<e>/sortir_usages/"""
from django.http import Http404
from rest_framework import serializers, viewsets

from .models import CardUsage


class CardUsageSerializer(serializers.ModelSerializer):
    order = serializers.SlugRelatedField(slug_field="code", read_only=True)
    positionid = serializers.IntegerField(source="order_position.positionid", read_only=True, default=None)
    subevent = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = CardUsage
        fields = ("id", "order", "positionid", "subevent", "card_last4", "state", "grant_id", "granted_at",
                  "grant_attempts", "created", "updated")


class CardUsageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CardUsageSerializer
    permission = "event.orders:read"
    filterset_fields = ()

    def get_queryset(self):
        # API routes are not gated by plugin activation in pretix: do it here.
        if "pretix_sortir" not in self.request.event.get_plugins():
            raise Http404()
        qs = CardUsage.objects.filter(event=self.request.event).select_related("order", "order_position").order_by("pk")
        state = self.request.query_params.get("state")
        return qs.filter(state=state) if state else qs
