"""Admin forms for the governed operations: each one shapes input for exactly one service.

The forms check only what a browser can get wrong (a number is a number, a reason is given);
the governance rules stay in ``routing.services`` and ``routing.promotion`` and come back as
form errors.
"""

from __future__ import annotations

from typing import Any

from django import forms

from registry.models import ModelVersion
from routing.models import Endpoint, PromotionRequest, Variant

REASON_HELP = "Recorded in the audit trail and in the MLflow version tags."


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        self.endpoint = endpoint
        super().__init__(*args, **kwargs)

    def service_kwargs(self) -> dict[str, Any]:
        return {"reason": self.cleaned_data["reason"]}


def _free_versions(endpoint: Endpoint) -> list[tuple[int, str]]:
    serving = set(
        endpoint.variants.filter(role__in=Variant.SERVING_ROLES).values_list("model_version_id", flat=True)
    )
    versions = ModelVersion.objects.filter(registered_model=endpoint.registered_model).order_by("-version")
    return [
        (v.version, f"v{v.version} ({v.status}{', ' + ', '.join(v.aliases) if v.aliases else ''})")
        for v in versions
        if v.pk not in serving
    ]


class ChallengerStartForm(ReasonForm):
    version = forms.TypedChoiceField(coerce=int, choices=())
    percent = forms.IntegerField(
        help_text="Share of live traffic, 1-99 %; the others keep their proportions."
    )
    field_order = ["version", "percent", "reason"]

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        self.fields["version"].choices = _free_versions(endpoint)

    def service_kwargs(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("version", "percent", "reason")}


class ShadowSetForm(ChallengerStartForm):
    percent = None
    mirror_percent = forms.IntegerField(help_text="% of requests copied to the shadow, 1-100.")
    field_order = ["version", "mirror_percent", "reason"]

    def service_kwargs(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("version", "mirror_percent", "reason")}


class TrafficSplitForm(ReasonForm):
    """One weight per champion and challenger, set together."""

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        weighted = endpoint.variants.filter(role__in=Variant.WEIGHTED_ROLES).order_by("role", "name")
        self.names = [v.name for v in weighted]
        for v in weighted:
            self.fields[f"weight_{v.name}"] = forms.IntegerField(
                label=f"Weight of {v.name} ({v.role}, v{v.model_version.version})", initial=v.weight
            )
        self.order_fields([f"weight_{n}" for n in self.names] + ["reason"])

    def service_kwargs(self) -> dict[str, Any]:
        weights = {n: self.cleaned_data[f"weight_{n}"] for n in self.names}
        return {"weights": weights, "reason": self.cleaned_data["reason"]}


class PromoteForm(ReasonForm):
    variant = forms.ChoiceField(choices=())
    gate_override_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Only to promote despite a failed promotion gate; audited.",
    )
    field_order = ["variant", "reason", "gate_override_reason"]

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        challengers = endpoint.variants.filter(role=Variant.Role.CHALLENGER).select_related("model_version")
        self.fields["variant"].choices = [
            (v.name, f"{v.name} (v{v.model_version.version})") for v in challengers
        ]

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "variant_name": data["variant"],
            "reason": data["reason"],
            "gate_override_reason": data["gate_override_reason"],
        }


class VariantReasonForm(ReasonForm):
    """Pick a shadow to remove."""

    variant = forms.ChoiceField(choices=())
    field_order = ["variant", "reason"]

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        shadows = endpoint.variants.filter(role=Variant.Role.SHADOW)
        self.fields["variant"].choices = [(v.name, v.name) for v in shadows]

    def service_kwargs(self) -> dict[str, Any]:
        return {"variant_name": self.cleaned_data["variant"], "reason": self.cleaned_data["reason"]}


class DecisionForm(ReasonForm):
    """Approve (reason optional) or reject (reason required) a pending promotion request."""

    request_id = forms.TypedChoiceField(coerce=int, choices=(), label="Promotion request")
    field_order = ["request_id", "reason"]

    def __init__(self, *args: Any, endpoint: Endpoint, reason_required: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        self.fields["reason"].required = reason_required
        pending = endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING)
        self.fields["request_id"].choices = [
            (r.pk, f"#{r.pk}: promote {r.variant.name}, asked by {r.requested_by}: {r.reason}")
            for r in pending
        ]

    def service_kwargs(self) -> dict[str, Any]:
        return {"request_id": self.cleaned_data["request_id"], "reason": self.cleaned_data["reason"]}


class StartOnEndpointForm(forms.Form):
    """From a model version's page: start it as a challenger on one of its model's endpoints."""

    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.none(), to_field_name="name")
    percent = forms.IntegerField(help_text="Share of live traffic, 1-99 %.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

    def __init__(self, *args: Any, version: ModelVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = version
        self.fields["endpoint"].queryset = Endpoint.objects.filter(
            registered_model=version.registered_model_id
        )
