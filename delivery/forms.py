"""Admin forms for rollout plans: each shapes input for exactly one service in ``delivery.services``.

They check only what a browser can get wrong (numbers, JSON); the rules come back from the
services as form errors, worded as the API words them.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from delivery.checks import DEFAULT_CHECKS
from routing.models import Endpoint

REASON_HELP = "Recorded in the audit trail (and, for traffic changes, in the MLflow version tags)."


class PlanReasonForm(forms.Form):
    """Pause, resume, abort: a reason."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text=REASON_HELP)

    def service_kwargs(self) -> dict[str, Any]:
        return {"reason": self.cleaned_data["reason"]}


class PlanApproveForm(PlanReasonForm):
    """Approve the final promotion: a reason is optional."""

    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


class RolloutStartForm(PlanReasonForm):
    """Start a version as a canary with its plan."""

    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.order_by("name"), to_field_name="name")
    version = forms.IntegerField(min_value=1, help_text="The version of the endpoint's registered model.")
    steps = forms.CharField(
        initial="1, 5, 25, 50", help_text="Challenger share per step, percent, increasing."
    )
    bake_seconds = forms.IntegerField(
        min_value=0, initial=600, help_text="Time at each step before it may advance."
    )
    failures_to_rollback = forms.IntegerField(
        min_value=1, initial=1, help_text="Failed evaluations at one step."
    )
    max_hold_seconds = forms.IntegerField(
        min_value=0,
        initial=3600,
        help_text="After the bake time, how long a held step may wait before it alerts.",
    )
    approval_required = forms.BooleanField(
        required=False, help_text="The final promotion waits for a second person."
    )
    checks = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        initial=json.dumps(DEFAULT_CHECKS, indent=1),
        help_text="JSON: check name -> settings (see docs/progressive-delivery.md).",
    )

    def clean_steps(self) -> list[int]:
        try:
            return [int(s) for s in self.cleaned_data["steps"].replace(",", " ").split()]
        except ValueError:
            raise forms.ValidationError("Whole numbers separated by commas, e.g. 1, 5, 25, 50.") from None

    def clean_checks(self) -> Any:
        try:
            return json.loads(self.cleaned_data["checks"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["endpoint_name"] = data.pop("endpoint").name
        return data
