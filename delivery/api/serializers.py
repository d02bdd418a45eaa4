"""Shapes of the rollout API: a plan with its timeline, and the inputs of its actions.

Input serializers check shape only; every rule (steps increase, known checks, one active plan per
endpoint, four-eyes) lives in ``delivery.services`` so the admin and the API refuse alike.
"""

from __future__ import annotations

from rest_framework import serializers

from delivery.models import BanditPolicy, RolloutEvent, RolloutPlan
from routing.governance.api.serializers import INT32_MAX, OptionalReasonInput, ReasonInput

__all__ = [
    "BanditPolicySerializer",
    "BanditStartInput",
    "OptionalReasonInput",
    "ReasonInput",
    "RolloutPlanSerializer",
    "RolloutStartInput",
]


class RolloutEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RolloutEvent
        fields = ["at", "kind", "step_index", "percent", "checks", "actor", "note"]


class RolloutPlanSerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name", read_only=True)
    variant = serializers.CharField(source="variant.name", read_only=True)
    version = serializers.IntegerField(source="variant.model_version.version", read_only=True)
    percent = serializers.IntegerField(read_only=True, help_text="The challenger's share now, percent.")
    deadline = serializers.DateTimeField(read_only=True, help_text="When the current step is overdue.")
    events = RolloutEventSerializer(many=True, read_only=True)

    class Meta:
        model = RolloutPlan
        fields = [
            "id", "endpoint", "variant", "version", "status", "steps", "step_index", "percent",
            "bake_seconds", "checks", "failures_to_rollback", "step_failures", "approval_required",
            "max_hold_seconds", "promotion_request", "started_by", "reason", "outcome", "created_at",
            "step_started_at", "deadline", "finished_at", "events",
        ]  # fmt: skip


def _int(low: int, high: int, **kwargs: object) -> serializers.IntegerField:
    messages = {
        "min_value": f"must be between {low} and {high}",
        "max_value": f"must be between {low} and {high}",
    }
    return serializers.IntegerField(min_value=low, max_value=high, error_messages=messages, **kwargs)


class RolloutStartInput(ReasonInput):
    endpoint = serializers.RegexField(r"^[-a-zA-Z0-9_]{1,100}$", max_length=100)
    version = _int(1, INT32_MAX)
    steps = serializers.ListField(
        child=_int(1, 99),
        min_length=1,
        max_length=20,
        help_text="Challenger share per step, percent, increasing.",
    )
    bake_seconds = _int(0, 7 * 86_400, help_text="Time at each step before its checks can pass.")
    checks = serializers.JSONField(
        required=False,
        default=None,
        help_text="Check name -> settings: min_requests, error_rate, latency, drift, workers_loaded, promql. "
        "Omitted: the defaults (docs/progressive-delivery.md).",
    )
    failures_to_rollback = _int(1, 100, required=False, default=1)
    approval_required = serializers.BooleanField(required=False, default=False)
    max_hold_seconds = _int(0, 30 * 86_400, required=False, default=3600)
    name = serializers.RegexField(r"^[-a-zA-Z0-9_]{1,100}$", required=False, default=None, allow_null=True)


class BanditPolicySerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name", read_only=True)

    class Meta:
        model = BanditPolicy
        fields = [
            "id", "endpoint", "metric", "metric_kind", "direction", "floor", "max_step", "min_outcomes",
            "is_active", "started_by", "started_at", "stopped_at", "last_evaluated_at", "last_evaluation",
            "regret", "changes",
        ]  # fmt: skip


class BanditStartInput(ReasonInput):
    endpoint = serializers.RegexField(r"^[-a-zA-Z0-9_]{1,100}$", max_length=100)
    metric = serializers.RegexField(r"^[-a-zA-Z0-9_]{1,100}$", help_text="A declared outcome metric.")
    floor = _int(0, 50, required=False, default=5, help_text="Every arm keeps at least this share, percent.")
    max_step = _int(
        1, 100, required=False, default=10, help_text="Most points an arm's share moves per tick."
    )
    min_outcomes = _int(
        2, 10_000_000, required=False, default=30, help_text="Outcomes per arm before any move."
    )
