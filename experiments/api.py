"""``/api/v1/experiments/``: what the admin's experiment page shows and does, for pipelines.

List, create (with its plan), read (latest look: verdict, arms, SRM, guardrails; and every look's
effect and interval), start, stop, analyse now. Each POST validates its input and calls one
service in ``experiments.services``; refusals answer ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from experiments import services
from experiments.models import Experiment, ExperimentLook
from experiments.selectors_page import effect_history
from routing.governance.api.serializers import ErrorSerializer
from routing.governance.errors import GovernanceError

_ERROR = OpenApiResponse(ErrorSerializer, description="Refused: the error body says why.")
REFUSALS = {400: _ERROR, 403: _ERROR, 404: _ERROR, 409: _ERROR}
MAX_FLOAT = 1e12


def _answers(ok: Any, status: int = 200) -> dict[int, Any]:
    return {status: ok, **REFUSALS}


class LookSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExperimentLook
        fields = ["id", "computed_at", "outcomes", "srm_flagged", "snapshot"]


class ExperimentSerializer(serializers.ModelSerializer):
    endpoint = serializers.SlugRelatedField(slug_field="name", read_only=True)
    # Plain strings: as choice fields they would repeat routing's gate-mode enum under a new name.
    direction = serializers.CharField(read_only=True, help_text="higher_is_better or lower_is_better")
    metric_kind = serializers.CharField(read_only=True, help_text="binary or continuous")
    latest_look = serializers.SerializerMethodField()
    effect_history = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "id", "endpoint", "name", "status", "champion", "challengers", "primary_metric", "metric_kind",
            "direction", "guardrails", "alpha", "power", "minimum_effect", "minimum_effect_relative",
            "baseline_mean", "baseline_variance", "plan", "created_by", "created_at", "started_at",
            "stopped_at", "latest_look", "effect_history",
        ]  # fmt: skip

    def get_latest_look(self, obj: Experiment) -> dict[str, Any] | None:
        look = obj.looks.order_by("-computed_at", "-id").first()
        return LookSerializer(look).data if look else None

    def get_effect_history(self, obj: Experiment) -> dict[str, list[dict[str, Any]]]:
        """challenger -> [{"at", "difference", "ci_low", "ci_high", "p_value", "outcome"}] per look."""
        return effect_history(obj)


class GuardrailInput(serializers.Serializer):
    metric = serializers.CharField(max_length=110)
    tolerance = serializers.FloatField(min_value=0, max_value=MAX_FLOAT)
    relative = serializers.BooleanField(required=False, default=False)
    max = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_FLOAT,
        help_text="An absolute bound on the challenger's value as well (e.g. prediction_psi at most 0.25).",
    )


class ExperimentCreateInput(serializers.Serializer):
    endpoint_name = serializers.RegexField(r"^[-a-zA-Z0-9_]{1,100}$", max_length=100)
    name = serializers.CharField(max_length=100)
    primary_metric = serializers.CharField(
        max_length=110, help_text="accuracy, absolute_error, squared_error or outcome:<declared metric>"
    )
    minimum_effect = serializers.FloatField(min_value=1e-12, max_value=MAX_FLOAT)
    minimum_effect_relative = serializers.BooleanField(required=False, default=False)
    challengers = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        default=None,
        allow_null=True,
        max_length=20,
    )
    guardrails = GuardrailInput(many=True, required=False, default=list)
    alpha = serializers.FloatField(required=False, default=0.05, min_value=0.0001, max_value=0.4999)
    power = serializers.FloatField(required=False, default=0.8, min_value=0.5, max_value=0.9999)
    baseline_mean = serializers.FloatField(
        required=False, default=None, allow_null=True, min_value=-MAX_FLOAT, max_value=MAX_FLOAT
    )
    baseline_variance = serializers.FloatField(
        required=False, default=None, allow_null=True, min_value=0, max_value=MAX_FLOAT
    )
    reason = serializers.CharField(max_length=2000)


class ExperimentReasonInput(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def _error(code: str, message: str, status: int, details: Any = None) -> Response:
    return Response({"error": {"code": code, "message": message, "details": details}}, status=status)


def _run(
    request: Request, input_class: type, call: Callable[..., Any], **fixed: Any
) -> tuple[Any, Response | None]:
    data = input_class(data=request.data)
    if not data.is_valid():
        return None, _error("invalid", f"Invalid input: {data.errors}", 400, data.errors)
    try:
        return call(actor=request.user, **fixed, **data.validated_data), None
    except GovernanceError as exc:
        return None, _error(exc.code, exc.message, exc.status)


class ExperimentViewSet(viewsets.ReadOnlyModelViewSet):
    """Experiments, newest first (filter: ?endpoint=NAME); POST actions change them."""

    serializer_class = ExperimentSerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> Any:
        qs = Experiment.objects.select_related("endpoint")
        endpoint = self.request.query_params.get("endpoint")
        return qs.filter(endpoint__name=endpoint) if endpoint else qs

    def _answer(self, pk: Any, status: int = 200) -> Response:
        return Response(ExperimentSerializer(Experiment.objects.get(pk=pk)).data, status=status)

    @extend_schema(request=ExperimentCreateInput, responses=_answers(ExperimentSerializer, 201))
    def create(self, request: Request) -> Response:
        experiment, err = _run(request, ExperimentCreateInput, services.experiment_create)
        return err or self._answer(experiment.pk, 201)

    @extend_schema(request=ExperimentReasonInput, responses=_answers(ExperimentSerializer))
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        _, err = _run(request, ExperimentReasonInput, services.experiment_start, experiment_id=int(pk))
        return err or self._answer(pk)

    @extend_schema(request=ExperimentReasonInput, responses=_answers(ExperimentSerializer))
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        _, err = _run(request, ExperimentReasonInput, services.experiment_stop, experiment_id=int(pk))
        return err or self._answer(pk)

    @extend_schema(request=None, responses=_answers(LookSerializer, 201))
    @action(detail=True, methods=["post"])
    def analyze(self, request: Request, pk: str) -> Response:
        """A look now (the periodic task takes one every SCHEDULE_ANALYZE_EXPERIMENTS_SECONDS)."""
        try:
            look = services.experiment_analyze(actor=request.user, experiment_id=int(pk))
        except GovernanceError as exc:
            return _error(exc.code, exc.message, exc.status)
        return Response(LookSerializer(look).data, status=201)


router = SimpleRouter()  # routing's DefaultRouter already serves the /api/v1/ root
router.register("experiments", ExperimentViewSet, basename="experiment")
urlpatterns = router.urls
