"""REST API: /api/v1/organizers/<o>/events/<e>/sortir_usages/ (read), and .../<id>/attach_card/ (write)."""
from django.http import Http404
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .holds import CardError
from .missing import AttachError, attach_card
from .models import CardUsage


class CardUsageSerializer(serializers.ModelSerializer):
    order = serializers.SlugRelatedField(slug_field="code", read_only=True)
    positionid = serializers.IntegerField(source="order_position.positionid", read_only=True, default=None)
    subevent = serializers.PrimaryKeyRelatedField(read_only=True)
    #: a Sortir! ticket created outside the checkout that has no card yet (attach one with attach_card)
    needs_card = serializers.SerializerMethodField()

    class Meta:
        model = CardUsage
        fields = ("id", "order", "positionid", "subevent", "card_last4", "state", "needs_card", "grant_id", "granted_at",
                  "grant_attempts", "created", "updated")

    def get_needs_card(self, obj):
        return obj.state == CardUsage.MISSING


class AttachCardSerializer(serializers.Serializer):
    card_number = serializers.CharField(max_length=40, write_only=True)


class CardUsageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CardUsageSerializer
    permission = "event.orders:read"
    write_permission = "event.orders:write"
    filterset_fields = ()

    def get_queryset(self):
        # API routes are not gated by plugin activation in pretix: do it here.
        if "pretix_sortir" not in self.request.event.get_plugins():
            raise Http404()
        qs = CardUsage.objects.filter(event=self.request.event).select_related("order", "order_position").order_by("pk")
        state = self.request.query_params.get("state")
        return qs.filter(state=state) if state else qs

    @action(detail=True, methods=["post"])
    def attach_card(self, request, **kwargs):
        """Attach a card to a ticket without one: checked with APRAS like at checkout; queues the grant if the order is paid."""
        usage = self.get_object()
        data = AttachCardSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            usage = attach_card(usage, data.validated_data["card_number"], auth=request.auth,
                                user=request.user if request.user.is_authenticated else None)
        except CardError as e:
            code = status.HTTP_503_SERVICE_UNAVAILABLE if e.code == CardError.UNAVAILABLE else status.HTTP_400_BAD_REQUEST
            return Response({"card_number": [str(e)], "code": e.code}, status=code)
        except AttachError as e:
            return Response({"detail": str(e), "code": e.code}, status=status.HTTP_409_CONFLICT)
        return Response(CardUsageSerializer(usage, context=self.get_serializer_context()).data)
