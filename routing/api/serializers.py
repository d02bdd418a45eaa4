"""Shapes of the control API: read serializers for listings, input serializers for actions.

Input serializers only check shape (a number is a number); every governance rule lives in
``routing.services`` and ``routing.promotion`` so the API and the admin refuse the same things
with the same words.
"""

from __future__ import annotations

from rest_framework import serializers

from registry.models import AuditEvent, ModelVersion
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
        if shares is None:
            weighted = obj.endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES)
            total = sum(v.weight for v in weighted)
            return obj.weight / total if total and obj.role in Variant.WEIGHTED_ROLES else 0.0
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
        from routing.selectors import endpoint_variants, variant_shares

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
            "id", "endpoint", "variant", "status", "reason", "gate_override_reason", "requested_by",
            "decided_by", "decision_reason", "created_at", "decided_at",
        ]  # fmt: skip


# --- inputs -----------------------------------------------------------------------------------


class ReasonInput(serializers.Serializer):
    reason = serializers.CharField(help_text="Why; recorded in the audit trail and MLflow tags.")


class OptionalReasonInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class EndpointCreateInput(ReasonInput):
    name = serializers.CharField()
    model_name = serializers.CharField()
    champion_version = serializers.IntegerField()
    description = serializers.CharField(required=False, allow_blank=True, default="")
    gate_metric = serializers.CharField(required=False, allow_blank=True, default="")
    gate_mode = serializers.CharField(required=False, default=Endpoint.GateMode.HIGHER_IS_BETTER)


class ChallengerStartInput(ReasonInput):
    version = serializers.IntegerField()
    percent = serializers.IntegerField(help_text="Share of live traffic the challenger gets, 1..99.")
    model_name = serializers.CharField(required=False, default=None)
    name = serializers.CharField(required=False, default=None)
    backend = serializers.CharField(required=False, default=Variant.Backend.INPROCESS)
    remote_url = serializers.CharField(required=False, allow_blank=True, default="")


class TrafficSplitInput(ReasonInput):
    weights = serializers.DictField(
        child=serializers.IntegerField(), help_text="Every champion and challenger name -> weight."
    )


class ShadowSetInput(ReasonInput):
    version = serializers.IntegerField()
    mirror_percent = serializers.IntegerField()
    model_name = serializers.CharField(required=False, default=None)
    name = serializers.CharField(required=False, default=None)


class VariantInput(ReasonInput):
    variant = serializers.CharField()


class PromoteInput(VariantInput):
    gate_override_reason = serializers.CharField(required=False, allow_blank=True, default="")
