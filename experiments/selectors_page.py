"""What the experiment page and the API show beyond the row: the latest look in words, the effect
with its always-valid interval over time, and the timeline (the experiment's own audit rows and
the endpoint's changes while it ran)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils import timezone

from experiments.models import Experiment
from registry.models import AuditEvent


def effect_history(experiment: Experiment, limit: int = 500) -> dict[str, list[dict[str, Any]]]:
    """challenger -> one point per look (oldest first): difference, interval, p-value, outcome."""
    looks = list(experiment.looks.order_by("-computed_at", "-id").values("computed_at", "snapshot")[:limit])
    out: dict[str, list[dict[str, Any]]] = {c: [] for c in experiment.challengers}
    for look in reversed(looks):
        for comparison in look["snapshot"].get("comparisons", []):
            seq = comparison["sequential"]
            out.setdefault(comparison["challenger"], []).append(
                {
                    "at": look["computed_at"].isoformat(),
                    "difference": seq["difference"],
                    "ci_low": seq["ci_low"],
                    "ci_high": seq["ci_high"],
                    "p_value": seq["p_value"],
                    "outcome": comparison["verdict"]["outcome"],
                }
            )
    return out


def timeline(experiment: Experiment) -> list[AuditEvent]:
    """The experiment's audit rows and the endpoint's changes between its creation and its end."""
    until = experiment.stopped_at or timezone.now()
    return list(
        AuditEvent.objects.filter(
            Q(object_type="experiment", object_id=str(experiment.pk))
            | Q(
                object_type="endpoint",
                object_id=str(experiment.endpoint_id),
                created_at__gte=experiment.created_at,
                created_at__lte=until,
            )
        ).order_by("created_at", "id")[:200]
    )
