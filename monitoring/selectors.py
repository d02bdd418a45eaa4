"""Reads of drift: for the admin, per variant of an endpoint, its traffic and the drift of its
features; for experiments' guardrails, a variant's latest PSI (``latest_psi``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from monitoring.drift import PSI_THRESHOLD
from monitoring.models import DriftReference, DriftResult

HISTORY = 30  # computations shown in each sparkline


@dataclass
class FeatureDrift:
    """The latest drift of one feature (or the prediction) and its PSI history, oldest first."""

    latest: DriftResult
    history: list[float] = field(default_factory=list)
    reference: dict | None = None  # the reference summary of this feature (monitoring.drift)
    sparkline: str = ""  # filled in by the template tag
    histogram: str = ""  # filled in by the template tag

    @property
    def drifted(self) -> bool:
        return self.latest.psi > PSI_THRESHOLD


@dataclass
class VariantMonitoring:
    """What the admin shows for one variant: traffic and drift."""

    name: str
    role: str
    model_version: int
    share: float
    requests_last_hour: int
    reference_kind: str = ""
    computed_at: object = None
    features: list[FeatureDrift] = field(default_factory=list)


def _reference_summaries(model_name: str, version: int) -> dict[str, dict]:
    """feature (or ``DriftResult.PREDICTION``) -> its reference summary, for the histograms."""
    ref = DriftReference.objects.filter(model_name=model_name, model_version=version).first()
    if ref is None:
        return {}
    summaries = dict(ref.reference.get("features", {}))
    if ref.reference.get("prediction"):
        summaries[DriftResult.PREDICTION] = ref.reference["prediction"]
    return summaries


def _feature_drift(endpoint: str, variant: str, version: int) -> list[FeatureDrift]:
    rows = list(
        DriftResult.objects.filter(endpoint=endpoint, variant=variant, model_version=version).order_by(
            "-computed_at"
        )[: HISTORY * 64]
    )
    if not rows:
        return []
    stamps = sorted({r.computed_at for r in rows}, reverse=True)[:HISTORY]
    by_feature: dict[str, list[DriftResult]] = {}
    for r in rows:
        if r.computed_at in stamps:
            by_feature.setdefault(r.feature, []).append(r)
    summaries = _reference_summaries(rows[0].model_name, version)
    out = [
        FeatureDrift(
            latest=rs[0], history=[r.psi for r in reversed(rs)], reference=summaries.get(rs[0].feature)
        )
        for rs in by_feature.values()
    ]
    # The prediction first, then the most drifted features.
    return sorted(out, key=lambda f: (not f.latest.is_prediction, -f.latest.psi))


def endpoint_monitoring(endpoint_name: str) -> list[VariantMonitoring]:
    """Every serving variant of the endpoint with its traffic share, recent requests and drift."""
    from routing.models import PredictionLog, Variant, traffic_shares

    variants = list(
        Variant.objects.filter(endpoint__name=endpoint_name, role__in=Variant.SERVING_ROLES).select_related(
            "model_version"
        )
    )
    shares = traffic_shares((v.name, v.role, v.weight) for v in variants)
    since = timezone.now() - timedelta(hours=1)
    out = []
    for v in variants:
        version = v.model_version.version
        features = _feature_drift(endpoint_name, v.name, version)
        out.append(
            VariantMonitoring(
                name=v.name,
                role=v.role,
                model_version=version,
                share=shares[v.name],
                requests_last_hour=PredictionLog.objects.filter(
                    endpoint=endpoint_name, variant=v.name, created_at__gte=since
                ).count(),
                reference_kind=features[0].latest.get_reference_kind_display() if features else "",
                computed_at=features[0].latest.computed_at if features else None,
                features=features,
            )
        )
    return out


def latest_psi(endpoint: str, variant: str, model_version: int | None = None) -> dict[str, float] | None:
    """A variant's latest drift computation as ``{"prediction_psi", "feature_psi_max"}``, or None
    when none exists (for ``model_version`` when given). A key is missing when that computation
    has no such row (a model without a logged prediction reference has no prediction PSI).
    Experiments' drift guardrails read this."""
    rows = DriftResult.objects.filter(endpoint=endpoint, variant=variant)
    if model_version is not None:
        rows = rows.filter(model_version=model_version)
    latest = rows.order_by("-computed_at").values_list("computed_at", flat=True).first()
    if latest is None:
        return None
    out: dict[str, float] = {}
    features = []
    for feature, psi in rows.filter(computed_at=latest).values_list("feature", "psi"):
        if feature == DriftResult.PREDICTION:
            out["prediction_psi"] = float(psi)
        else:
            features.append(float(psi))
    if features:
        out["feature_psi_max"] = max(features)
    return out
