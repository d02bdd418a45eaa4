"""The control API: listings, and one POST per governed operation, each calling one service.

Refusals come back as ``{"error": {"code", "message", "details"}}`` with the service's status
(400 bad input, 403 not allowed, 404 unknown, 409 conflicts with the current state; 503 stays
in the schema for clients, though an MLflow outage no longer refuses a change: its aliases follow
through the alias outbox, docs/background-work.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from registry.models import AuditEvent, ModelVersion
from routing.governance import promotion, services, traffic_changes
from routing.governance.api import serializers as s
from routing.governance.api.exceptions import flat_errors
from routing.governance.errors import GovernanceError
from routing.models import Endpoint, PromotionRequest, Variant

# Every refusal a governed operation can answer, as documented in the schema.
_ERROR = OpenApiResponse(s.ErrorSerializer, description="Refused: the error body says why.")
REFUSALS = {400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR, 503: _ERROR}
# Primary keys are 64-bit: a longer number is no id (and overflowed SQLite, a 500), so the route
# does not match it and the answer is a 404.
ID_REGEX = "[0-9]{1,18}"


def documented_answers(ok: Any, status: int = 200) -> dict[int, Any]:
    return {status: ok, **REFUSALS}


def error_answer(code: str, message: str, status: int, details: Any = None) -> Response:
    return Response({"error": {"code": code, "message": message, "details": details}}, status=status)


def _run(
    request: Request, input_class: type[serializers.Serializer], call: Callable[..., Any], **fixed: Any
) -> tuple[Any, Response | None]:
    """Validate the body, call the service; a refusal becomes the error response."""
    data = input_class(data=request.data)
    if not data.is_valid():
        fields = ", ".join(flat_errors(data.errors))
        return None, error_answer("invalid", f"Invalid input: {fields}", 400, data.errors)
    try:
        return call(actor=request.user, **fixed, **data.validated_data), None
    except GovernanceError as exc:
        return None, error_answer(exc.code, exc.message, exc.status)


def _endpoint_response(name: str, status: int = 200) -> Response:
    endpoint = Endpoint.objects.select_related("registered_model").get(name=name)
    return Response(s.EndpointSerializer(endpoint).data, status=status)


class EndpointViewSet(viewsets.ReadOnlyModelViewSet):
    """Endpoints with their serving variants and shares; POST actions change them."""

    queryset = Endpoint.objects.select_related("registered_model")
    serializer_class = s.EndpointSerializer
    lookup_field = "name"
    lookup_value_regex = "[-a-zA-Z0-9_]{1,100}"

    @extend_schema(request=s.EndpointCreateInput, responses=documented_answers(s.EndpointSerializer, 201))
    def create(self, request: Request) -> Response:
        ep, err = _run(request, s.EndpointCreateInput, services.endpoint_create)
        return err or _endpoint_response(ep.name, 201)

    def _act(self, request: Request, name: str, input_class: type, call: Callable[..., Any]) -> Response:
        _, err = _run(request, input_class, call, endpoint_name=name)
        return err or _endpoint_response(name)

    @extend_schema(request=s.ChallengerStartInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"], url_path="challengers")
    def challenger_start(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.ChallengerStartInput, services.challenger_start)

    @extend_schema(request=s.TrafficSplitInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"], url_path="split")
    def traffic_split_set(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.TrafficSplitInput, services.traffic_split_set)

    @extend_schema(request=s.ShadowSetInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"], url_path="shadows")
    def shadow_set(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.ShadowSetInput, services.shadow_set)

    @extend_schema(request=s.VariantInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"], url_path="shadows/remove")
    def shadow_remove(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.VariantInput, services.shadow_remove)

    @extend_schema(request=s.VariantInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"], url_path="retire")
    def challenger_retire(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.VariantInput, services.challenger_retire)

    @extend_schema(request=s.PromoteInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.PromoteInput, promotion.endpoint_promote)

    @extend_schema(request=s.PromoteInput, responses=documented_answers(s.PromotionRequestSerializer, 201))
    @action(detail=True, methods=["post"], url_path="promotion-requests")
    def promotion_request(self, request: Request, name: str) -> Response:
        req, err = _run(request, s.PromoteInput, promotion.promotion_request, endpoint_name=name)
        return err or Response(s.PromotionRequestSerializer(req).data, status=201)

    @extend_schema(
        request=s.TrafficSplitInput, responses=documented_answers(s.PromotionRequestSerializer, 201)
    )
    @action(detail=True, methods=["post"], url_path="traffic-requests")
    def traffic_change_request(self, request: Request, name: str) -> Response:
        req, err = _run(
            request, s.TrafficSplitInput, traffic_changes.traffic_change_request, endpoint_name=name
        )
        return err or Response(s.PromotionRequestSerializer(req).data, status=201)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.ReasonInput, promotion.endpoint_rollback)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.ReasonInput, services.endpoint_pause)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, name: str) -> Response:
        return self._act(request, name, s.ReasonInput, services.endpoint_resume)


class PromotionRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Four-eyes requests (promotions and traffic changes); a different user approves or rejects."""

    queryset = PromotionRequest.objects.select_related("endpoint", "variant", "requested_by", "decided_by")
    serializer_class = s.PromotionRequestSerializer
    lookup_value_regex = ID_REGEX

    @extend_schema(request=s.OptionalReasonInput, responses=documented_answers(s.EndpointSerializer))
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        variant, err = _run(request, s.OptionalReasonInput, promotion.promotion_approve, request_id=pk)
        return err or _endpoint_response(variant.endpoint.name)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.PromotionRequestSerializer))
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        req, err = _run(request, s.ReasonInput, promotion.promotion_reject, request_id=pk)
        return err or Response(s.PromotionRequestSerializer(req).data)


class VariantViewSet(viewsets.ReadOnlyModelViewSet):
    """Every variant of every endpoint, retired ones included (filter: ?endpoint=NAME)."""

    serializer_class = s.VariantSerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> Any:
        qs = Variant.objects.select_related("endpoint", "model_version__registered_model").prefetch_related(
            "endpoint__variants"
        )
        endpoint = self.request.query_params.get("endpoint")
        return qs.filter(endpoint__name=endpoint) if endpoint else qs


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """The mirrored MLflow versions (filter: ?model=NAME)."""

    serializer_class = s.ModelVersionSerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> Any:
        qs = ModelVersion.objects.select_related("registered_model")
        model = self.request.query_params.get("model")
        return qs.filter(registered_model__name=model) if model else qs


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail, newest first (filters: ?endpoint=NAME, ?action=...)."""

    serializer_class = s.AuditEventSerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> Any:
        qs = AuditEvent.objects.all()
        params = self.request.query_params
        if params.get("endpoint"):
            ids = Endpoint.objects.filter(name=params["endpoint"]).values_list("pk", flat=True)
            qs = qs.filter(object_type="endpoint", object_id__in=[str(i) for i in ids])
        if params.get("action"):
            qs = qs.filter(action=params["action"])
        return qs
