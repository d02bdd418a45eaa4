"""Shapes of the control API: read serializers for listings, input serializers for actions.

Input serializers only check shape (a number is a number); every governance rule lives in
``routing.governance.services`` and ``routing.governance.promotion`` so the API and the admin refuse the same things
with the same words.
"""

from __future__ import annotations

from rest_framework import serializers

from registry.models import AuditEvent, ModelVersion
from routing.governance.selectors import endpoint_variants, variant_shares
from routing.models import Endpoint, PromotionRequest, Variant


class VariantSerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name", read_only=True)
    model_name = serializers.CharField(source="model_version.registered_model.name", read_only=True)
    version = serializers.IntegerField(source="model_version.version", read_only=True)
    share = serializers.SerializerMethodField(help_text="Share of live traffic, 0..1.")

    class Meta:
        model = Variant
        fields = [
            "id", "endpoint", "name", "role", "model_name", "version", "weight", "share",
            "mirror_percent", "backend", "remote_url", "updated_at",
        ]  # fmt: skip

    def get_share(self, obj: Variant) -> float:
        shares = self.context.get("shares")
        if shares is None:  # a variant listed on its own: its endpoint's shares, in one query
            shares = variant_shares(variants=list(obj.endpoint.variants.all()))
        return shares.get(obj.name, 0.0)


class EndpointSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name", read_only=True)
    variants = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = [
            "id", "name", "registered_model", "description", "is_active", "gate_metric", "gate_mode",
            "variants", "created_at", "updated_at",
        ]  # fmt: skip

    def get_variants(self, obj: Endpoint) -> list[dict]:
        variants = endpoint_variants(endpoint=obj, include_inactive=False)
        ctx = {"shares": variant_shares(variants=variants)}
        return VariantSerializer(variants, many=True, context=ctx).data


class ModelVersionSerializer(serializers.ModelSerializer):
    model_name = serializers.CharField(source="registered_model.name", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id", "model_name", "version", "status", "aliases", "run_id", "metrics", "params",
            "is_servable", "deleted_in_mlflow", "mlflow_created_at",
        ]  # fmt: skip


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor", "actor_kind", "action", "object_type", "object_id",
            "object_repr", "before", "after", "reason", "request_id",
        ]  # fmt: skip


class PromotionRequestSerializer(serializers.ModelSerializer):
    endpoint = serializers.CharField(source="endpoint.name", read_only=True)
    variant = serializers.CharField(source="variant.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, default=None)

    class Meta:
        model = PromotionRequest
        fields = [
            "id", "endpoint", "kind", "variant", "weights", "status", "reason", "gate_override_reason",
            "requested_by", "decided_by", "decision_reason", "created_at", "decided_at",
        ]  # fmt: skip


# --- inputs -----------------------------------------------------------------------------------
# As strict as the services: the schema generated from these fields (choices, bounds, patterns,
# lengths) then describes exactly what the services accept, so a client generated from it sends
# requests that pass, and schemathesis' positive cases are accepted (issue 10, item 9).

# What ``slugify(name) == name`` accepts, in a form every JSON Schema regex engine reads.
SLUG = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
# Version numbers and weights are stored in 32-bit columns on PostgreSQL.
INT32_MAX = 2**31 - 1


def _slug(**kwargs: object) -> serializers.RegexField:
    messages = {"invalid": "must be a slug (lowercase letters, digits, - or _ between them)"}
    return serializers.RegexField(SLUG, max_length=100, error_messages=messages, **kwargs)


def _int(low: int, high: int, **kwargs: object) -> serializers.IntegerField:
    """A whole number in ``low..high``, refused in the services' words."""
    words = f"between {low} and {high}" if high < INT32_MAX else f"at least {low}"
    messages = {"min_value": f"must be {words}", "max_value": f"must be {words}"}
    return serializers.IntegerField(min_value=low, max_value=high, error_messages=messages, **kwargs)


def _version(**kwargs: object) -> serializers.IntegerField:
    return _int(1, INT32_MAX, **kwargs)


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, help_text="Why; recorded in the audit trail and MLflow tags (not blank)."
    )


class OptionalReasonInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class EndpointCreateInput(ReasonInput):
    name = _slug()
    model_name = serializers.CharField(max_length=256)
    champion_version = _version()
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)
    gate_metric = serializers.CharField(required=False, allow_blank=True, default="", max_length=128)
    gate_mode = serializers.ChoiceField(
        choices=Endpoint.GateMode.choices, required=False, default=Endpoint.GateMode.HIGHER_IS_BETTER
    )


class ChallengerStartInput(ReasonInput):
    version = _version()
    percent = _int(1, 99, help_text="Share of live traffic the challenger gets, 1..99.")
    model_name = serializers.CharField(required=False, default=None, allow_null=True, max_length=256)
    name = _slug(required=False, default=None, allow_null=True)
    backend = serializers.ChoiceField(
        choices=Variant.Backend.choices, required=False, default=Variant.Backend.INPROCESS
    )
    remote_url = serializers.URLField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        help_text="backend remote only: the scoring server; its host must be in REMOTE_BACKEND_ALLOWED_HOSTS.",
    )
    gate_override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=5000,
        help_text="When the share hands challengers most of the traffic and the promotion gate fails.",
    )


class TrafficSplitInput(ReasonInput):
    weights = serializers.DictField(
        child=_int(0, INT32_MAX),
        allow_empty=False,
        error_messages={"empty": "weights must be a non-empty mapping of variant name to weight"},
        help_text="Every champion and challenger name -> weight (at least one positive).",
    )
    gate_override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="When the split hands challengers most of the traffic and the promotion gate fails.",
    )


class ShadowSetInput(ReasonInput):
    version = _version()
    mirror_percent = _int(1, 100)
    model_name = serializers.CharField(required=False, default=None, allow_null=True, max_length=256)
    name = _slug(required=False, default=None, allow_null=True)


class VariantInput(ReasonInput):
    # The API says "variant", the services say variant_name: source maps one onto the other.
    variant = _slug(source="variant_name")


class PromoteInput(VariantInput):
    gate_override_reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000
    )


class ErrorSerializer(serializers.Serializer):
    """The control API's refusal: ``{"error": {"code", "message", "details"}}``."""

    class _Error(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.JSONField(allow_null=True)

    error = _Error()
