"""Drift computation over the prediction log: the one place that writes drift results.

Run periodically by ``manage.py compute_drift`` (``make run``, or a CronJob in the chart), never
per web worker. For each (endpoint, variant, model version) seen in the window it compares the
logged inputs and outputs with the version's reference and stores one ``DriftResult`` per
feature plus one for the prediction, all stamped with the same ``computed_at``.

No transaction is open while it reads MLflow, reads the log or computes: on SQLite a transaction
holds the database's one write lock from its first statement, and a minute of drift computation
inside one locked out the admin, token creation and the prediction log (issue 10). It reads
(autocommit), computes, then writes every result in one short transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring import drift
from monitoring.drift_reference import (
    ARTIFACT_FILE,
    KIND_LIVE_BOOTSTRAP,
    KIND_TRAINING,
    build_live_reference,
)
from monitoring.models import DriftReference, DriftResult
from registry import mlflow_client
from registry.models import ModelVersion
from routing.models import PredictionLog
from routing.serving.prediction_log import input_records

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(hours=1)
# Enough live rows for a stand-in reference whose deciles mean something.
BOOTSTRAP_ROWS = 500
# The most recent rows of a window that are compared; bounds memory and time per variant.
MAX_WINDOW_ROWS = 20_000


@dataclass(frozen=True, order=True)
class _Group:
    endpoint: str
    variant: str
    model_name: str
    model_version: int


def _log_rows(queryset: Any, limit: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Input rows and predictions of up to ``limit`` input rows from log entries."""
    rows: list[dict[str, Any]] = []
    predictions: list[Any] = []
    for inputs, outputs in queryset.values_list("inputs", "outputs").iterator():
        rows.extend(input_records(inputs))
        predictions.extend(outputs or [])
        if len(rows) >= limit:
            break
    return rows, predictions


def _training_reference(model_name: str, model_version: int) -> dict[str, Any] | None:
    version = (
        ModelVersion.objects.filter(registered_model__name=model_name, version=model_version)
        .exclude(run_id="")
        .first()
    )
    if version is None:
        return None
    return mlflow_client.run_artifact_json(version.run_id, ARTIFACT_FILE)


def drift_reference_get_or_create(
    *, model_name: str, model_version: int, bootstrap_rows: int = BOOTSTRAP_ROWS
) -> DriftReference | None:
    """The version's reference: stored, else from its MLflow run, else from its first live rows.

    None when there is no training reference and fewer than ``bootstrap_rows`` live rows yet.
    ``MlflowUnavailable`` propagates: an outage must not turn into a live-bootstrap reference.
    """
    stored = DriftReference.objects.filter(model_name=model_name, model_version=model_version).first()
    if stored is not None:
        return stored
    reference = _training_reference(model_name, model_version)  # MLflow: outside any transaction
    if reference is not None:
        return _reference_store(
            model_name=model_name,
            model_version=model_version,
            kind=KIND_TRAINING,
            reference=reference,
            source=f"MLflow run artifact {ARTIFACT_FILE}",
        )
    first = PredictionLog.objects.filter(model_name=model_name, model_version=model_version).order_by(
        "created_at", "id"
    )[:bootstrap_rows]
    entries = list(first.values("created_at", "inputs", "outputs"))
    rows = [r for e in entries for r in input_records(e["inputs"])]
    if len(rows) < bootstrap_rows:
        return None
    predictions = [p for e in entries for p in (e["outputs"] or [])]
    return _reference_store(
        model_name=model_name,
        model_version=model_version,
        kind=KIND_LIVE_BOOTSTRAP,
        reference=build_live_reference(rows, predictions),
        source=f"first {len(rows)} live rows",
        bootstrap_until=entries[-1]["created_at"],
    )


def _reference_store(*, model_name: str, model_version: int, **fields: Any) -> DriftReference:
    """One short write; a reference another run stored meanwhile wins (one per version)."""
    try:
        with transaction.atomic():
            return DriftReference.objects.create(model_name=model_name, model_version=model_version, **fields)
    except IntegrityError:
        return DriftReference.objects.get(model_name=model_name, model_version=model_version)


def _groups(window_start: datetime, window_end: datetime, endpoint: str | None) -> list[_Group]:
    logs = PredictionLog.objects.filter(created_at__gt=window_start, created_at__lte=window_end)
    if endpoint:
        logs = logs.filter(endpoint=endpoint)
    # order_by() first: the model's ordering (created_at) would otherwise join the DISTINCT and
    # give one "group" per log row, each computed again (issue 10: minutes at ~30k rows).
    keys = logs.order_by().values_list("endpoint", "variant", "model_name", "model_version").distinct()
    return sorted({_Group(*k) for k in keys})


def _drift_compute_group(
    group: _Group, *, window_start: datetime, window_end: datetime, computed_at: datetime, bootstrap_rows: int
) -> list[DriftResult]:
    """The group's results, computed and not yet saved: reads only (and maybe its reference)."""
    ref = drift_reference_get_or_create(
        model_name=group.model_name, model_version=group.model_version, bootstrap_rows=bootstrap_rows
    )
    if ref is None:
        return []
    logs = PredictionLog.objects.filter(
        endpoint=group.endpoint,
        variant=group.variant,
        model_name=group.model_name,
        model_version=group.model_version,
        created_at__gt=max(window_start, ref.bootstrap_until or window_start),
        created_at__lte=window_end,
    ).order_by("-created_at", "-id")
    rows, predictions = _log_rows(logs, MAX_WINDOW_ROWS)
    stats = drift.compare_to_reference(ref.reference, rows, predictions)
    return [
        DriftResult(
            endpoint=group.endpoint,
            variant=group.variant,
            model_name=group.model_name,
            model_version=group.model_version,
            feature=s.feature,
            feature_kind=s.kind,
            psi=s.psi,
            ks_stat=s.ks_stat,
            ks_pvalue=s.ks_pvalue,
            chi2_stat=s.chi2_stat,
            chi2_pvalue=s.chi2_pvalue,
            n_live=s.n_live,
            n_reference=s.n_reference,
            reference_kind=ref.kind,
            live_shares=s.live_shares,
            window_start=window_start,
            window_end=window_end,
            computed_at=computed_at,
        )
        for s in stats
    ]


def drift_compute(
    *,
    endpoint: str | None = None,
    window: timedelta = DEFAULT_WINDOW,
    now: datetime | None = None,
    bootstrap_rows: int = BOOTSTRAP_ROWS,
) -> list[DriftResult]:
    """Compute and store drift for every variant that logged predictions in the window.

    Everything is read and computed first, outside any transaction; an MLflow outage while
    fetching one version's reference skips that variant (logged) and keeps the others. The
    results are then written in one short transaction.
    """
    window_end = now or timezone.now()
    window_start = window_end - window
    results: list[DriftResult] = []
    for group in _groups(window_start, window_end, endpoint):
        try:
            results.extend(
                _drift_compute_group(
                    group,
                    window_start=window_start,
                    window_end=window_end,
                    computed_at=window_end,
                    bootstrap_rows=bootstrap_rows,
                )
            )
        except mlflow_client.MlflowUnavailable as exc:
            logger.warning("drift for %s/%s skipped: %s", group.endpoint, group.variant, exc)
    with transaction.atomic():
        return DriftResult.objects.bulk_create(results, batch_size=500)
