"""Admin forms for the governed operations: each one shapes input for exactly one service.

The forms check only what a browser can get wrong (a number is a number, a reason is given);
the governance rules stay in ``routing.governance.services`` and ``routing.governance.promotion`` and come back as
form errors.
"""

from __future__ import annotations

from typing import Any

from django import forms

from registry.models import ModelVersion
from routing.models import Endpoint, PromotionRequest, ServiceToken, Variant

REASON_HELP = "Recorded in the audit trail and in the MLflow version tags."


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        self.endpoint = endpoint
        super().__init__(*args, **kwargs)

    def service_kwargs(self) -> dict[str, Any]:
        return {"reason": self.cleaned_data["reason"]}


GATE_OVERRIDE_HELP = "Only to go ahead despite a failed promotion gate; audited."


def _gate_override_field(help_text: str = GATE_OVERRIDE_HELP) -> forms.CharField:
    return forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=help_text
    )


TAKEOVER_HELP = (
    "Only when this gives challengers more than half of the traffic (GOVERNANCE_MAX_CHALLENGER_SHARE) "
    "and the promotion gate fails; audited."
)


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
    gate_override_reason = _gate_override_field(TAKEOVER_HELP)
    field_order = ["version", "percent", "reason", "gate_override_reason"]

    def __init__(self, *args: Any, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        self.fields["version"].choices = _free_versions(endpoint)

    def service_kwargs(self) -> dict[str, Any]:
        return {k: self.cleaned_data[k] for k in ("version", "percent", "reason", "gate_override_reason")}


class ShadowSetForm(ChallengerStartForm):
    percent = None
    gate_override_reason = None
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
        self.fields["gate_override_reason"] = _gate_override_field(TAKEOVER_HELP)
        self.order_fields([f"weight_{n}" for n in self.names] + ["reason", "gate_override_reason"])

    def service_kwargs(self) -> dict[str, Any]:
        weights = {n: self.cleaned_data[f"weight_{n}"] for n in self.names}
        data = self.cleaned_data
        return {
            "weights": weights,
            "reason": data["reason"],
            "gate_override_reason": data["gate_override_reason"],
        }


class PromoteForm(ReasonForm):
    variant = forms.ChoiceField(choices=())
    gate_override_reason = _gate_override_field("Only to promote despite a failed promotion gate; audited.")
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
    """Approve (reason optional) or reject (reason required) a pending promotion or traffic request."""

    request_id = forms.TypedChoiceField(coerce=int, choices=(), label="Request")
    field_order = ["request_id", "reason"]

    def __init__(self, *args: Any, endpoint: Endpoint, reason_required: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, endpoint=endpoint, **kwargs)
        self.fields["reason"].required = reason_required
        pending = endpoint.promotion_requests.filter(status=PromotionRequest.Status.PENDING)
        self.fields["request_id"].choices = [
            (r.pk, f"#{r.pk}: {r.summary}, asked by {r.requested_by}: {r.reason}") for r in pending
        ]

    def service_kwargs(self) -> dict[str, Any]:
        return {"request_id": self.cleaned_data["request_id"], "reason": self.cleaned_data["reason"]}


class ChampionVersionField(forms.ModelChoiceField):
    """A servable version of any registered model, labelled with its model and aliases."""

    def label_from_instance(self, obj: ModelVersion) -> str:
        aliases = f" ({', '.join(obj.aliases)})" if obj.aliases else ""
        return f"{obj.registered_model.name} v{obj.version}{aliases}"


class EndpointCreateForm(forms.Form):
    """A new endpoint: its name and the version that takes all traffic (``endpoint_create``)."""

    name = forms.SlugField(
        max_length=100, help_text="URL name: /predict/<name>; lowercase letters, digits, -."
    )
    champion = ChampionVersionField(
        queryset=ModelVersion.objects.none(),
        label="Registered model and champion version",
        help_text="Takes 100 % of the traffic; start challengers from the endpoint page afterwards.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))
    gate_metric = forms.CharField(
        required=False, max_length=64, help_text="Quality metric a challenger must beat to be promoted."
    )
    gate_mode = forms.ChoiceField(
        choices=Endpoint.GateMode.choices, initial=Endpoint.GateMode.HIGHER_IS_BETTER
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["champion"].queryset = ModelVersion.objects.filter(
            status=ModelVersion.Status.READY,
            deleted_in_mlflow=False,
            registered_model__deleted_in_mlflow=False,
        ).select_related("registered_model")

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "model_name": data["champion"].registered_model.name,
            "champion_version": data["champion"].version,
            "description": data["description"],
            "gate_metric": data["gate_metric"],
            "gate_mode": data["gate_mode"],
            "reason": data["reason"],
        }


class StartOnEndpointForm(forms.Form):
    """From a model version's page: start it as a challenger on one of its model's endpoints."""

    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.none(), to_field_name="name")
    percent = forms.IntegerField(help_text="Share of live traffic, 1-99 %.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)
    gate_override_reason = _gate_override_field(TAKEOVER_HELP)

    def __init__(self, *args: Any, version: ModelVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = version
        self.fields["endpoint"].queryset = Endpoint.objects.filter(
            registered_model=version.registered_model_id
        )


# --- service tokens (routing.governance.tokens) -------------------------------------------------


class ServiceTokenScopeForm(forms.Form):
    """What a token may call; the create form adds its name. Checked again by the token services."""

    endpoints = forms.ModelMultipleChoiceField(
        queryset=Endpoint.objects.all(),
        to_field_name="name",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Endpoints it may call (or allow all below).",
    )
    all_endpoints = forms.BooleanField(
        required=False, help_text="Allowed on every endpoint, new ones included."
    )
    scopes = forms.MultipleChoiceField(
        choices=ServiceToken.Scope.choices, initial=["predict"], widget=forms.CheckboxSelectMultiple
    )
    can_override = forms.BooleanField(required=False, help_text="May force a variant with X-Variant.")
    rate_limit_per_second = forms.IntegerField(
        required=False, min_value=0, help_text="Requests per second; empty: the default; 0: unlimited."
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Recorded in the audit trail.",
    )

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["endpoints"] = [e.name for e in data["endpoints"]]
        return data


class ServiceTokenCreateForm(ServiceTokenScopeForm):
    name = forms.CharField(max_length=100, help_text="Who uses it, e.g. the calling service's name.")
    field_order = ["name"]
