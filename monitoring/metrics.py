"""Every Prometheus metric the control plane's processes record, declared once.

A leaf module: it imports nothing of ours, so the /predict hot path, the model loader and the
prediction-log writer can all record into it without an import cycle. Names and labels are the
dashboards' contract (``../shared/CONTRACT.md``); the dashboards and alert rules in
``monitoring/dashboards`` and ``monitoring/alerts`` are checked against ``METRIC_NAMES`` by tests.

Labels are bounded: endpoint, variant, model_version, outcome, feature, reason, agreed; never a
user, unit key or request id.

Under gunicorn with several workers, prometheus_client's multiprocess mode (enabled by
``PROMETHEUS_MULTIPROC_DIR`` before the workers start) writes these to per-process files that
``monitoring.views.metrics`` merges at scrape time. Gauges whose truth lives in the database
(traffic weights, drift) are not declared here: ``monitoring.collectors`` produces them.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

# In-process inference is sub-millisecond for a native model on one row and a few ms through
# pyfunc; a batch or a cold model can take seconds.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

OUTCOMES = frozenset({"success", "client_error", "server_error"})

PREDICTIONS = Counter(
    "controlplane_predictions",
    "Predictions answered by /predict, by variant, model version and outcome.",
    ["endpoint", "variant", "model_version", "outcome"],
)
PREDICTION_LATENCY = Histogram(
    "controlplane_prediction_latency_seconds",
    "Time spent in the model for one /predict call (inference only).",
    ["endpoint", "variant", "model_version"],
    buckets=LATENCY_BUCKETS,
)
REQUEST_LATENCY = Histogram(
    "controlplane_request_latency_seconds",
    "Time spent in the whole /predict handler: parsing, routing, inference, answer.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
FALLBACKS = Counter(
    "controlplane_fallbacks",
    "Requests answered by another variant because the chosen one could not serve.",
    ["endpoint", "variant", "reason"],
)
SHADOW_PREDICTIONS = Counter(
    "controlplane_shadow_predictions",
    "Mirrored (shadow) predictions, whose answers are logged but never returned.",
    ["endpoint", "variant", "model_version", "outcome"],
)
SHADOW_AGREEMENT = Counter(
    "controlplane_shadow_agreement",
    "Shadow predictions compared with the served answer; agreed is 'true' or 'false'.",
    ["endpoint", "variant", "model_version", "agreed"],
)
PREDICTION_LOG_DROPPED = Counter(
    "controlplane_prediction_log_dropped",
    "Prediction-log rows dropped because the writer's queue was full or the write failed.",
    ["endpoint"],
)
SHADOW_DROPPED = Counter(
    "controlplane_shadow_dropped",
    "Mirrored copies not run because the worker's shadow queue was full (the shadow is too slow).",
    ["endpoint", "variant"],
)
# livemin: 0 as soon as one live worker has not loaded the version; dead workers' files are
# dropped by mark_process_dead in gunicorn's child_exit hook.
MODEL_LOADED = Gauge(
    "controlplane_model_loaded",
    "1 when every live worker holds this variant's model version in memory, else 0.",
    ["endpoint", "variant", "model_version"],
    multiprocess_mode="livemin",
)

# Names as they appear in the exposition (a counter gains _total, a histogram its suffixes).
DECLARED_METRICS = {
    "controlplane_predictions_total": "counter",
    "controlplane_prediction_latency_seconds": "histogram",
    "controlplane_request_latency_seconds": "histogram",
    "controlplane_fallbacks_total": "counter",
    "controlplane_shadow_predictions_total": "counter",
    "controlplane_shadow_agreement_total": "counter",
    "controlplane_prediction_log_dropped_total": "counter",
    "controlplane_shadow_dropped_total": "counter",
    "controlplane_model_loaded": "gauge",
}

_state = {"enabled": True}


def set_enabled(enabled: bool) -> None:
    """Turn recording on or off for this process (``make bench`` measures the cost)."""
    _state["enabled"] = enabled


def is_enabled() -> bool:
    return _state["enabled"]


def _version_label(outcome: str, model_version: int | str) -> str:
    """Refuse an outcome outside the bounded set; the version as a label value."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    return str(model_version)


# The labelled children /predict records into, looked up once per label set instead of through
# ``labels()`` on every request (bounded: endpoints x variants x versions x outcomes).
@functools.lru_cache(maxsize=4096)
def _prediction_children(
    endpoint: str, variant: str, model_version: int | str, outcome: str
) -> tuple[Any, Any]:
    version = _version_label(outcome, model_version)
    return PREDICTIONS.labels(endpoint, variant, version, outcome), PREDICTION_LATENCY.labels(
        endpoint, variant, version
    )


@functools.lru_cache(maxsize=1024)
def _request_child(endpoint: str) -> Any:
    return REQUEST_LATENCY.labels(endpoint)


def record_prediction(
    endpoint: str, variant: str, model_version: int | str, outcome: str, seconds: float | None = None
) -> None:
    """Count one /predict answer; ``seconds`` is the time in the model, when it was called."""
    if not _state["enabled"]:
        return
    counter, latency = _prediction_children(endpoint, variant, model_version, outcome)
    counter.inc()
    if seconds is not None:
        latency.observe(seconds)


def record_request(endpoint: str, seconds: float) -> None:
    """Time of the whole /predict handler for one request."""
    if _state["enabled"]:
        _request_child(endpoint).observe(seconds)


def record_fallback(endpoint: str, variant: str, reason: str) -> None:
    """A request went to another variant; ``reason`` must come from a small fixed set."""
    if _state["enabled"]:
        FALLBACKS.labels(endpoint, variant, reason).inc()


def record_shadow(
    endpoint: str,
    variant: str,
    model_version: int | str,
    outcome: str,
    agreed: bool | None = None,
) -> None:
    """One mirrored prediction; ``agreed`` is None when there was nothing to compare."""
    if not _state["enabled"]:
        return
    version = _version_label(outcome, model_version)
    SHADOW_PREDICTIONS.labels(endpoint, variant, version, outcome).inc()
    if agreed is not None:
        SHADOW_AGREEMENT.labels(endpoint, variant, version, "true" if agreed else "false").inc()


def record_log_dropped(endpoint: str, rows: int = 1) -> None:
    """Prediction-log rows lost (queue full, write failed)."""
    if _state["enabled"] and rows > 0:
        PREDICTION_LOG_DROPPED.labels(endpoint).inc(rows)


def record_shadow_dropped(endpoint: str, variant: str) -> None:
    """A mirrored copy not queued because the shadow queue was full."""
    if _state["enabled"]:
        SHADOW_DROPPED.labels(endpoint, variant).inc()


def set_model_loaded(endpoint: str, variant: str, model_version: int | str, loaded: bool) -> None:
    """Called by the loader: 1 after a version is loaded, 0 when it is dropped or failed to load.

    Always recorded, even with metrics turned off: the champion-not-loaded alert depends on it.
    """
    MODEL_LOADED.labels(endpoint, variant, str(model_version)).set(1 if loaded else 0)
