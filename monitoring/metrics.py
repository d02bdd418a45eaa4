"""Every Prometheus metric the control plane's processes record, declared once.

A leaf module: it imports nothing of ours, so the /predict hot path, the model loader and the
prediction-log writer can all record into it without an import cycle. Names and labels are the
dashboards' contract (``docs/metrics.md``); the dashboards and alert rules in
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

# --- Background work (Celery tasks), recorded by controlplane.celery's signal handlers in the
# worker processes. ``task`` is the registered task name (a fixed set, e.g. registry.sync_model).
# Queue depth lives in the broker and is read at scrape time by monitoring.task_queue.
TASK_OUTCOMES = frozenset({"success", "failure", "retry", "skipped", "deferred"})
# A webhook sync takes well under a second; a full reconcile or drift over a big log, minutes.
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
TASK_RUNS = Counter(
    "controlplane_task_runs",
    "Background task runs by outcome: success, failure, retry, skipped (another worker had the "
    "job) or deferred (sent again to run after the same job elsewhere).",
    ["task", "outcome"],
)
TASK_DURATION = Histogram(
    "controlplane_task_duration_seconds",
    "Time one background task run took, whatever its outcome.",
    ["task"],
    buckets=TASK_BUCKETS,
)
# --- Loss made visible (issue 10): what the prediction log took in and wrote, and requests the
# rate limiter let through unchecked because its store failed. enqueued - written - dropped is
# what is still queued (or was lost with a killed worker).
PREDICTION_LOG_ENQUEUED = Counter(
    "controlplane_prediction_log_enqueued",
    "Prediction-log rows queued by the request path for the writer.",
    ["endpoint"],
)
PREDICTION_LOG_WRITTEN = Counter(
    "controlplane_prediction_log_written",
    "Prediction-log rows the writer stored in the database.",
    ["endpoint"],
)
PREDICTION_LOG_RETRIED = Counter(
    "controlplane_prediction_log_retried",
    "Prediction-log rows the database refused (locked, down) that went back to the queue.",
    ["endpoint"],
)
RATE_LIMIT_FAILED_OPEN = Counter(
    "controlplane_rate_limit_failed_open",
    "/predict requests let through without a rate-limit check because the limiter's store failed.",
    ["endpoint"],
)
# --- Serving resilience (issue 10): worker start and exits, model loads, the refresher.
WORKER_EXITS = Counter(
    "controlplane_worker_exits",
    "Workers that left on their own so gunicorn starts a fresh one (reason: model_store_broken).",
    ["reason"],
)
MODEL_LOADS = Counter(
    "controlplane_model_loads",
    "Model-version loads by a serving worker: origin cache (local disk) or mlflow; outcome success or failure.",
    ["origin", "outcome"],
)
ROUTING_REFRESHES = Counter(
    "controlplane_routing_refreshes",
    "Routing-table refreshes: unchanged (one query), rebuilt, or failed (database unreachable).",
    ["result"],
)
# livemin: the oldest confirmation among live workers; time() minus it is the stalest table.
ROUTING_TABLE_CONFIRMED = Gauge(
    "controlplane_routing_table_confirmed_timestamp_seconds",
    "When this worker last confirmed its routing table against the database (Unix time).",
    multiprocess_mode="livemin",
)
# --- Feedback (issue 12): items sent to /feedback, by the variant they were attributed to
# (variant "" when a refused item named no prediction) and outcome: accepted, duplicate (ground
# truth sent again, replacing the earlier label) or rejected.
FEEDBACK_OUTCOMES = frozenset({"accepted", "duplicate", "rejected"})
FEEDBACK = Counter(
    "controlplane_feedback",
    "Feedback items received by /feedback, by attributed variant and outcome (accepted, duplicate, rejected).",
    ["endpoint", "variant", "outcome"],
)

# --- Progressive delivery (issue 14): recorded by the rollout controller (a Celery task). The
# current step of each plan lives in the database: delivery.collectors exports it at scrape time.
ROLLOUT_CHECK_RESULTS = frozenset({"pass", "fail", "wait", "skip"})
ROLLOUT_CHECKS = Counter(
    "controlplane_rollout_checks",
    "Rollout-plan check evaluations by check and result (pass, fail, wait, skip).",
    ["endpoint", "check", "result"],
)
ROLLOUT_ROLLBACKS = Counter(
    "controlplane_rollout_rollbacks",
    "Rollout plans rolled back by the controller because their checks failed.",
    ["endpoint"],
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
    "controlplane_task_runs_total": "counter",
    "controlplane_task_duration_seconds": "histogram",
    "controlplane_prediction_log_enqueued_total": "counter",
    "controlplane_prediction_log_written_total": "counter",
    "controlplane_prediction_log_retried_total": "counter",
    "controlplane_rate_limit_failed_open_total": "counter",
    "controlplane_worker_exits_total": "counter",
    "controlplane_model_loads_total": "counter",
    "controlplane_routing_refreshes_total": "counter",
    "controlplane_routing_table_confirmed_timestamp_seconds": "gauge",
    "controlplane_rollout_checks_total": "counter",
    "controlplane_rollout_rollbacks_total": "counter",
    "controlplane_feedback_total": "counter",
}

# Collectors whose truth lives in the database, added by apps that stand above this leaf
# (experiments' variant quality): /metrics registers them per scrape in multiprocess mode.
DATABASE_COLLECTORS: list[Any] = []


def register_database_collector(collector: Any) -> None:
    """Have ``/metrics`` export ``collector`` in every mode (idempotent)."""
    if collector not in DATABASE_COLLECTORS:
        DATABASE_COLLECTORS.append(collector)


def record_feedback(endpoint: str, variant: str, outcome: str, items: int = 1) -> None:
    """Feedback items by outcome: accepted, duplicate or rejected (always counted)."""
    if outcome not in FEEDBACK_OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(FEEDBACK_OUTCOMES)}")
    if items > 0:
        FEEDBACK.labels(endpoint, variant, outcome).inc(items)


_state = {"enabled": True}


def set_enabled(enabled: bool) -> None:
    """Turn recording on or off for this process (``make bench`` measures the cost)."""
    _state["enabled"] = enabled


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


@functools.lru_cache(maxsize=1024)
def _enqueued_child(endpoint: str) -> Any:
    return PREDICTION_LOG_ENQUEUED.labels(endpoint)


def record_log_enqueued(endpoint: str) -> None:
    """One prediction-log row queued (the request path: a cached child, one increment)."""
    if _state["enabled"]:
        _enqueued_child(endpoint).inc()


def record_log_written(endpoint: str, rows: int) -> None:
    """Prediction-log rows stored by the writer."""
    if _state["enabled"] and rows > 0:
        PREDICTION_LOG_WRITTEN.labels(endpoint).inc(rows)


def record_log_retried(endpoint: str, rows: int) -> None:
    """Prediction-log rows put back in the queue after the database refused their batch."""
    if _state["enabled"] and rows > 0:
        PREDICTION_LOG_RETRIED.labels(endpoint).inc(rows)


def record_rate_limit_failed_open(endpoint: str) -> None:
    """A /predict request not rate-limited because the limiter's store failed (always counted)."""
    RATE_LIMIT_FAILED_OPEN.labels(endpoint).inc()


def record_shadow_dropped(endpoint: str, variant: str) -> None:
    """A mirrored copy not queued because the shadow queue was full."""
    if _state["enabled"]:
        SHADOW_DROPPED.labels(endpoint, variant).inc()


def set_model_loaded(endpoint: str, variant: str, model_version: int | str, loaded: bool) -> None:
    """Set after every routing-table build: 1 when this worker can serve the variant, else 0.

    A variant that leaves the table is no longer set: its last value stays in this worker's series
    until the worker exits (``mark_process_dead`` in gunicorn's ``child_exit``), so dashboards and
    alerts join on ``controlplane_variant_info`` to see only configured variants.

    Always recorded, even with metrics turned off: the champion-not-loaded alert depends on it.
    """
    MODEL_LOADED.labels(endpoint, variant, str(model_version)).set(1 if loaded else 0)


def record_task(task: str, outcome: str, seconds: float | None = None) -> None:
    """One background task run; always recorded (the stuck-queue and failing-task alerts need it)."""
    if outcome not in TASK_OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(TASK_OUTCOMES)}")
    TASK_RUNS.labels(task, outcome).inc()
    if seconds is not None:
        TASK_DURATION.labels(task).observe(seconds)


# --- Serving resilience (issue 10). Always recorded, even with metrics turned off: operators
# need them most when something is wrong, and none is on the request path.


def record_worker_exit(reason: str) -> None:
    """A worker leaves on its own (``reason`` from a small fixed set) so gunicorn replaces it."""
    WORKER_EXITS.labels(reason).inc()


def record_model_load(origin: str, outcome: str) -> None:
    """One model-version load: ``origin`` cache, mlflow or none (failed before any); success or failure."""
    MODEL_LOADS.labels(origin, outcome).inc()


def record_routing_refresh(result: str, confirmed_at: float | None = None) -> None:
    """One refresher step: unchanged, rebuilt or failed; ``confirmed_at`` (Unix time) when it reached the database."""
    ROUTING_REFRESHES.labels(result).inc()
    if confirmed_at is not None:
        ROUTING_TABLE_CONFIRMED.set(confirmed_at)


# --- Progressive delivery (issue 14). Always recorded: the controller is off the request path.


def record_rollout_check(endpoint: str, check: str, result: str) -> None:
    """One check of one rollout-plan evaluation (``check`` from delivery's fixed set of checks)."""
    if result not in ROLLOUT_CHECK_RESULTS:
        raise ValueError(f"result {result!r} is not one of {sorted(ROLLOUT_CHECK_RESULTS)}")
    ROLLOUT_CHECKS.labels(endpoint, check, result).inc()


def record_rollout_rollback(endpoint: str) -> None:
    """The controller rolled a plan's challenger back."""
    ROLLOUT_ROLLBACKS.labels(endpoint).inc()
