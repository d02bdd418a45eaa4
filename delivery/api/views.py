"""/api/v1/rollouts/: list and read plans with their timelines; start, pause, resume, abort, approve.

Each POST validates its body and calls one service in ``delivery.services``; refusals come back as
``{"error": {"code", "message", "details"}}`` with the service's status, like the rest of the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from delivery import bandits, services
from delivery.api import serializers as s
from delivery.models import BanditPolicy, RolloutPlan
from routing.governance.api.exceptions import flat_errors
from routing.governance.api.views import ID_REGEX, documented_answers, error_answer
from routing.governance.errors import GovernanceError


def _run(
    request: Request,
    input_class: type[serializers.Serializer],
    call: Callable[..., Any],
    status: int = 200,
    **fixed: Any,
) -> Response:
    """Validate the body, call the service, answer the plan as it is now (or the refusal)."""
    data = input_class(data=request.data)
    if not data.is_valid():
        return error_answer(
            "invalid", f"Invalid input: {', '.join(flat_errors(data.errors))}", 400, data.errors
        )
    try:
        plan = call(actor=request.user, **fixed, **data.validated_data)
    except GovernanceError as exc:
        return error_answer(exc.code, exc.message, exc.status)
    return Response(s.RolloutPlanSerializer(RolloutPlan.objects.get(pk=plan.pk)).data, status=status)


class RolloutPlanViewSet(viewsets.ReadOnlyModelViewSet):
    """Rollout plans, newest first (filters: ?endpoint=NAME, ?status=running|paused|...)."""

    serializer_class = s.RolloutPlanSerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> Any:
        qs = RolloutPlan.objects.select_related("endpoint", "variant__model_version").prefetch_related(
            "events"
        )
        params = self.request.query_params
        if params.get("endpoint"):
            qs = qs.filter(endpoint__name=params["endpoint"])
        if params.get("status"):
            qs = qs.filter(status=params["status"])
        return qs

    @extend_schema(
        parameters=[
            OpenApiParameter("endpoint", str, description="Only this endpoint's plans."),
            OpenApiParameter(
                "status", str, enum=RolloutPlan.Status.values, description="Only plans in this status."
            ),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=s.RolloutStartInput, responses=documented_answers(s.RolloutPlanSerializer, 201))
    def create(self, request: Request) -> Response:
        def start(*, actor: Any, endpoint: str, **kwargs: Any) -> RolloutPlan:
            return services.rollout_start(actor=actor, endpoint_name=endpoint, **kwargs)

        return _run(request, s.RolloutStartInput, start, status=201)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.RolloutPlanSerializer))
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return _run(request, s.ReasonInput, services.rollout_pause, plan_id=pk)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.RolloutPlanSerializer))
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return _run(request, s.ReasonInput, services.rollout_resume, plan_id=pk)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.RolloutPlanSerializer))
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str) -> Response:
        return _run(request, s.ReasonInput, services.rollout_abort, plan_id=pk)

    @extend_schema(request=s.OptionalReasonInput, responses=documented_answers(s.RolloutPlanSerializer))
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return _run(request, s.OptionalReasonInput, services.rollout_approve, plan_id=pk)


class BanditPolicyViewSet(viewsets.ReadOnlyModelViewSet):
    """Bandit mode per endpoint, newest first (filter: ?endpoint=NAME); start it, stop it."""

    serializer_class = s.BanditPolicySerializer
    lookup_value_regex = ID_REGEX

    def get_queryset(self) -> Any:
        qs = BanditPolicy.objects.select_related("endpoint")
        endpoint = self.request.query_params.get("endpoint")
        return qs.filter(endpoint__name=endpoint) if endpoint else qs

    def _answer(
        self, request: Request, input_class: type, call: Callable[..., Any], status: int, **fixed: Any
    ) -> Response:
        data = input_class(data=request.data)
        if not data.is_valid():
            return error_answer(
                "invalid", f"Invalid input: {', '.join(flat_errors(data.errors))}", 400, data.errors
            )
        try:
            policy = call(actor=request.user, **fixed, **data.validated_data)
        except GovernanceError as exc:
            return error_answer(exc.code, exc.message, exc.status)
        return Response(s.BanditPolicySerializer(policy).data, status=status)

    @extend_schema(request=s.BanditStartInput, responses=documented_answers(s.BanditPolicySerializer, 201))
    def create(self, request: Request) -> Response:
        def start(*, actor: Any, endpoint: str, **kwargs: Any) -> BanditPolicy:
            return bandits.bandit_start(actor=actor, endpoint_name=endpoint, **kwargs)

        return self._answer(request, s.BanditStartInput, start, 201)

    @extend_schema(request=s.ReasonInput, responses=documented_answers(s.BanditPolicySerializer))
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        policy = self.get_object()
        return self._answer(
            request, s.ReasonInput, bandits.bandit_stop, 200, endpoint_name=policy.endpoint.name
        )
