"""The admin's forms for experiments: create (every design field), and a reason for start/stop."""

from __future__ import annotations

from typing import Any

from django import forms

from routing.models import Endpoint


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def service_kwargs(self) -> dict[str, Any]:
        return {"reason": self.cleaned_data["reason"]}


class ExperimentCreateForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.all(), to_field_name="name")
    name = forms.CharField(max_length=100)
    primary_metric = forms.CharField(
        max_length=110,
        initial="accuracy",
        help_text="accuracy (higher is better), absolute_error or squared_error (lower), or outcome:&lt;declared metric&gt;.",
    )
    challengers = forms.CharField(
        required=False, help_text="Comma-separated variant names; empty: every challenger."
    )
    minimum_effect = forms.FloatField(
        min_value=1e-12, help_text="Smallest difference worth detecting (0.02 = 2 points of accuracy)."
    )
    minimum_effect_relative = forms.BooleanField(
        required=False, help_text="The minimum effect is a fraction of the baseline."
    )
    alpha = forms.FloatField(initial=0.05, min_value=0.0001, max_value=0.4999)
    power = forms.FloatField(initial=0.8, min_value=0.5, max_value=0.9999)
    baseline_mean = forms.FloatField(
        required=False, help_text="Empty: from the champion's feedback (or its val_accuracy)."
    )
    baseline_variance = forms.FloatField(required=False, min_value=0, help_text="Continuous metrics only.")
    guardrails = forms.JSONField(
        required=False,
        initial=list,
        help_text=(
            'e.g. [{"metric": "latency_p99_ms", "tolerance": 5}, {"metric": "fallback_rate", "tolerance": 0.01}, '
            '{"metric": "prediction_psi", "tolerance": 0.1, "max": 0.25}]'
        ),
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)

    def clean_guardrails(self) -> list[dict[str, Any]]:
        value = self.cleaned_data.get("guardrails") or []
        if not isinstance(value, list) or not all(isinstance(g, dict) for g in value):
            raise forms.ValidationError(
                "A list of objects with metric, tolerance, relative and (optionally) max."
            )
        return value

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["endpoint_name"] = data.pop("endpoint").name
        names = [c.strip() for c in (data.pop("challengers") or "").split(",") if c.strip()]
        data["challengers"] = names or None
        return data
