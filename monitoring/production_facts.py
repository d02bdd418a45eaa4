"""What production learns, written back to MLflow as model-version tags (``production_facts_publish``).

For every version an endpoint serves, the version in MLflow carries where and how it serves:

- ``controlplane.endpoint``: the endpoint(s) serving it;
- ``controlplane.role``: champion, challenger or shadow;
- ``controlplane.serving_since``: when it started serving there (UTC, ISO 8601);
- ``controlplane.traffic_share``: its share of live traffic, 0..1 (shadows: 0);
- ``controlplane.drift_status``: ``stable``, ``drifted`` (some feature or the prediction above
  the PSI threshold) or ``unknown`` (no drift computed yet), with ``controlplane.drift_max_psi``
  and ``controlplane.drift_checked_at``.

A version served by several endpoints gets ``endpoint=value`` pairs, comma-separated. A version
that stopped serving keeps its history but its ``traffic_share`` drops to ``0``. Idempotent: the
registry mirror holds the tags MLflow has, and only tags whose value differs are written, so a
run with nothing new makes no MLflow call. MLflow calls happen outside any transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Max, Q

from monitoring.drift import PSI_THRESHOLD
from monitoring.models import DriftResult
from registry import mlflow_client
from registry.models import ModelVersion
from registry.services import version_tags_write

logger = logging.getLogger(__name__)

PREFIX = "controlplane."
SHARE_TAG = f"{PREFIX}traffic_share"


@dataclass(frozen=True)
class _Serving:
    endpoint: str
    variant: str
    role: str
    share: float
    since: dt.datetime


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="seconds")


def _serving_by_version() -> dict[int, list[_Serving]]:
    """ModelVersion pk -> where it serves now (active endpoints' serving variants)."""
    from routing.models import Variant, traffic_shares

    variants = list(
        Variant.objects.filter(endpoint__is_active=True, role__in=Variant.SERVING_ROLES).select_related(
            "endpoint"
        )
    )
    by_endpoint: dict[str, list[Variant]] = defaultdict(list)
    for v in variants:
        by_endpoint[v.endpoint.name].append(v)
    out: dict[int, list[_Serving]] = defaultdict(list)
    for name, vs in by_endpoint.items():
        shares = traffic_shares((v.name, v.role, v.weight) for v in vs)
        for v in vs:
            out[v.model_version_id].append(_Serving(name, v.name, v.role, shares[v.name], v.created_at))
    return out


def _drift(serving: _Serving, model_version: int) -> tuple[str, str, str]:
    """(status, max PSI, checked at) of the latest drift computation of this variant."""
    rows = DriftResult.objects.filter(
        endpoint=serving.endpoint, variant=serving.variant, model_version=model_version
    )
    latest = rows.aggregate(at=Max("computed_at"))["at"]
    if latest is None:
        return "unknown", "", ""
    top = rows.filter(computed_at=latest).aggregate(psi=Max("psi"))["psi"] or 0.0
    return ("drifted" if top > PSI_THRESHOLD else "stable"), f"{top:.4f}", _iso(latest)


def _joined(pairs: list[tuple[str, str]]) -> str:
    return pairs[0][1] if len(pairs) == 1 else ",".join(f"{e}={v}" for e, v in pairs)


def facts_for(version: ModelVersion, serving: list[_Serving]) -> dict[str, str]:
    """The tags ``version`` should carry while served as ``serving`` says."""
    serving = sorted(serving, key=lambda s: s.endpoint)
    drift = [(s.endpoint, _drift(s, version.version)) for s in serving]
    facts = {
        f"{PREFIX}endpoint": ",".join(s.endpoint for s in serving),
        f"{PREFIX}role": _joined([(s.endpoint, s.role) for s in serving]),
        f"{PREFIX}serving_since": _joined([(s.endpoint, _iso(s.since)) for s in serving]),
        SHARE_TAG: _joined([(s.endpoint, f"{s.share:.4f}") for s in serving]),
        f"{PREFIX}drift_status": _joined([(e, d[0]) for e, d in drift]),
    }
    if any(d[1] for _, d in drift):
        facts[f"{PREFIX}drift_max_psi"] = _joined([(e, d[1] or "-") for e, d in drift])
        facts[f"{PREFIX}drift_checked_at"] = _joined([(e, d[2] or "-") for e, d in drift])
    return facts


def production_facts_publish() -> int:
    """Write changed production facts of every served (or no longer served) version; returns tags written."""
    serving = _serving_by_version()
    candidates = ModelVersion.objects.filter(
        Q(pk__in=list(serving)) | Q(tags__has_key=SHARE_TAG), deleted_in_mlflow=False
    ).select_related("registered_model")
    written = 0
    for version in candidates:
        if version.pk in serving:
            wanted = facts_for(version, serving[version.pk])
        elif version.tags.get(SHARE_TAG, "0") not in ("0", ""):
            wanted = {SHARE_TAG: "0"}  # it stopped serving: the last role and drift stay as history
        else:
            continue
        try:
            written += version_tags_write(version, wanted)
        except mlflow_client.MlflowUnavailable as exc:
            logger.warning("production facts of %s not written: %s", version, exc)
    return written
