"""The checks that gate each step of a rollout plan, read from the control plane's own data.

Each check looks at the current step's window (``since``: when the step started) and answers
``pass``, ``fail`` (counts towards a rollback), ``wait`` (not enough evidence yet: the step is
held, nothing counts) or ``skip`` (nothing to judge here, e.g. no drift result yet and drift not
required). Sources: the prediction log (requests, errors as fallbacks, latency), monitoring's
drift results, the serving workers' status rows, the experiment comparing the challenger (its
verdict and SRM, from ``experiments``) and, when configured, Prometheus (an SRE's own PromQL). Nothing here writes; the controller calls ``checks_evaluate`` outside any transaction
because the Prometheus query waits on the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import requests
from django.conf import settings
from django.db.models import Count, Q

from experiments.models import Experiment, ExperimentLook
from monitoring.models import DriftResult
from routing.governance.errors import GovernanceError
from routing.models import PredictionLog, Variant, WorkerStatus

PASS, FAIL, WAIT, SKIP = "pass", "fail", "wait", "skip"

# What a plan checks when it names no checks: a quiet hour never promotes (min_requests), and
# the challenger must fail no more often and answer no slower than the champion.
DEFAULT_CHECKS: dict[str, dict[str, Any]] = {
    "min_requests": {"count": 100},
    "error_rate": {"max_increase": 0.01},
    "latency": {"percentile": 95, "max_ratio": 1.5, "slack_ms": 5.0},
    "drift": {"max_psi": 0.25, "required": False},
    "workers_loaded": {},
    "experiment_verdict": {"required": False},
    "srm": {"required": False},
}
# The latest rows a latency percentile is computed from (a bounded read per evaluation).
LATENCY_SAMPLE = 5000


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, stored in the plan's timeline and counted in the metrics."""

    check: str
    result: str
    detail: str
    value: float | None = None
    threshold: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    """What the checks judge: a challenger against its champion since the step started."""

    endpoint: str
    challenger: Variant
    champion: Variant
    since: datetime

    def log(self) -> Any:
        return PredictionLog.objects.filter(
            endpoint=self.endpoint, is_shadow=False, created_at__gte=self.since
        )


def _attempts(window: Window, variant: str) -> tuple[int, int]:
    """(requests routed to ``variant``, of which it failed and another variant answered)."""
    counts = window.log().aggregate(
        answered=Count("pk", filter=Q(variant=variant, fallback_from="")),
        failed=Count("pk", filter=Q(fallback_from=variant)),
    )
    return counts["answered"] + counts["failed"], counts["failed"]


def check_min_requests(window: Window, config: dict[str, Any]) -> CheckResult:
    need = int(config.get("count", 100))
    seen, _ = _attempts(window, window.challenger.name)
    verdict = PASS if seen >= need else WAIT
    return CheckResult("min_requests", verdict, f"{seen} of {need} requests at this step", seen, need)


def check_error_rate(window: Window, config: dict[str, Any]) -> CheckResult:
    """Challenger's failures (answered by the champion as a fallback) against the champion's own."""
    allowed = float(config.get("max_increase", 0.01))
    tried, failed = _attempts(window, window.challenger.name)
    if tried < int(config.get("min_samples", 20)):
        return CheckResult("error_rate", WAIT, f"only {tried} challenger requests so far")
    base_tried, base_failed = _attempts(window, window.champion.name)
    ours = failed / tried
    theirs = base_failed / base_tried if base_tried else 0.0
    verdict = PASS if ours <= theirs + allowed else FAIL
    detail = f"challenger {ours:.2%} ({failed}/{tried}) vs champion {theirs:.2%} (+{allowed:.2%} allowed)"
    return CheckResult("error_rate", verdict, detail, ours, theirs + allowed)


def _latency(window: Window, variant: str, percentile: float) -> tuple[float, int]:
    rows = list(
        window.log()
        .filter(variant=variant, fallback_from="")
        .order_by("-created_at")
        .values_list("latency_ms", flat=True)[:LATENCY_SAMPLE]
    )
    return (float(np.percentile(rows, percentile)) if rows else math.nan), len(rows)


def check_latency(window: Window, config: dict[str, Any]) -> CheckResult:
    """The challenger's latency percentile may exceed the champion's by ``max_ratio`` (+ ``slack_ms``)."""
    pct = float(config.get("percentile", 95))
    ratio, slack = float(config.get("max_ratio", 1.5)), float(config.get("slack_ms", 5.0))
    minimum = int(config.get("min_samples", 20))
    ours, n = _latency(window, window.challenger.name, pct)
    theirs, m = _latency(window, window.champion.name, pct)
    if n < minimum or m < minimum:
        return CheckResult("latency", WAIT, f"p{pct:g} needs {minimum} samples each (have {n} and {m})")
    limit = theirs * ratio + slack
    verdict = PASS if ours <= limit else FAIL
    detail = f"p{pct:g} challenger {ours:.2f} ms vs champion {theirs:.2f} ms (limit {limit:.2f} ms)"
    return CheckResult("latency", verdict, detail, ours, limit)


def check_drift(window: Window, config: dict[str, Any]) -> CheckResult:
    """The challenger's latest drift (worst feature or prediction PSI) computed during this step."""
    limit, required = float(config.get("max_psi", 0.25)), bool(config.get("required", False))
    mv = window.challenger.model_version
    rows = DriftResult.objects.filter(
        endpoint=window.endpoint,
        variant=window.challenger.name,
        model_version=mv.version,
        computed_at__gte=window.since,
    )
    latest = rows.order_by("-computed_at").values_list("computed_at", flat=True).first()
    if latest is None:
        detail = "no drift result for this step yet"
        return CheckResult("drift", WAIT if required else SKIP, detail, None, limit)
    worst = max(rows.filter(computed_at=latest), key=lambda r: r.psi)
    verdict = PASS if worst.psi <= limit else FAIL
    return CheckResult("drift", verdict, f"worst PSI {worst.psi:.3f} ({worst.feature})", worst.psi, limit)


def check_workers_loaded(window: Window, config: dict[str, Any]) -> CheckResult:
    """Every live serving worker holds the challenger's version, and none failed to load it."""
    model, version = window.challenger.endpoint.registered_model.name, window.challenger.model_version.version
    if window.challenger.backend != Variant.Backend.INPROCESS:
        return CheckResult("workers_loaded", SKIP, "remote variant: loaded by its own server")
    live = list(WorkerStatus.objects.live())
    if not live:
        return CheckResult("workers_loaded", SKIP, "no live worker reports its models")
    failed = [w.name for w in live if w.failure(model, version)]
    if failed:
        return CheckResult("workers_loaded", FAIL, f"failed to load on {', '.join(failed)}", len(failed), 0)
    holding = sum(1 for w in live if w.holds(model, version))
    verdict = PASS if holding == len(live) else WAIT
    return CheckResult("workers_loaded", verdict, f"loaded on {holding} of {len(live)} live workers", holding)


def prometheus_value(query: str) -> float | None:
    """The first value an instant PromQL query returns (None: an empty result)."""
    response = requests.get(
        f"{settings.ROLLOUT_PROMETHEUS_URL.rstrip('/')}/api/v1/query",
        params={"query": query},
        timeout=settings.ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS,
    )
    response.raise_for_status()
    data = response.json()["data"]
    if data["resultType"] == "scalar":
        return float(data["result"][1])
    if data["resultType"] == "vector" and data["result"]:
        return float(data["result"][0]["value"][1])
    return None


def check_promql(window: Window, config: dict[str, Any]) -> CheckResult:
    """An SRE's PromQL (``$endpoint``, ``$variant`` filled in) must stay within ``max`` (or above ``min``).

    Prometheus away or an empty result holds the step (wait): a monitoring outage never rolls back.
    """
    query = config["query"].replace("$endpoint", window.endpoint).replace("$variant", window.challenger.name)
    try:
        value = prometheus_value(query)
    except (requests.RequestException, KeyError, ValueError, IndexError) as exc:
        return CheckResult("promql", WAIT, f"Prometheus did not answer: {type(exc).__name__}: {exc}"[:300])
    if value is None or math.isnan(value):
        return CheckResult("promql", WAIT, "the query returned no value yet")
    if "max" in config:
        limit = float(config["max"])
        return CheckResult(
            "promql", PASS if value <= limit else FAIL, f"{value:.6g} <= {limit:g}", value, limit
        )
    limit = float(config["min"])
    return CheckResult("promql", PASS if value >= limit else FAIL, f"{value:.6g} >= {limit:g}", value, limit)


def _latest_look(
    window: Window, name: str, required: bool
) -> tuple[ExperimentLook | None, CheckResult | None]:
    """The latest look, computed during this step, of the experiment comparing this challenger."""
    experiments = Experiment.objects.filter(endpoint__name=window.endpoint).exclude(
        status=Experiment.Status.DRAFT
    )
    experiment = next((e for e in experiments if window.challenger.name in e.challengers), None)
    if experiment is None:
        return None, CheckResult(
            name, WAIT if required else SKIP, f"no experiment compares {window.challenger.name}"
        )
    look = experiment.looks.filter(computed_at__gte=window.since).order_by("-computed_at", "-id").first()
    if look is None:
        return None, CheckResult(
            name, WAIT if required else SKIP, f"{experiment.name}: no analysis during this step"
        )
    return look, None


def check_experiment_verdict(window: Window, config: dict[str, Any]) -> CheckResult:
    """The experiment's verdict on the primary metric is not "worse" (``not_yet`` and a withheld
    verdict hold the step; ``better`` and ``no_difference`` pass)."""
    look, missing = _latest_look(window, "experiment_verdict", bool(config.get("required", False)))
    if look is None:
        return missing  # type: ignore[return-value]
    outcome = look.outcomes.get(window.challenger.name, "not_yet")
    verdict = {"worse": FAIL, "better": PASS, "no_difference": PASS}.get(outcome, WAIT)
    if outcome == "not_yet" and not config.get("decided", False):
        verdict = PASS  # "not worse" so far; decided: true waits for better or no_difference
    return CheckResult("experiment_verdict", verdict, f"{look.experiment.name}: {outcome}")


def check_srm(window: Window, config: dict[str, Any]) -> CheckResult:
    """The experiment's latest look found no sample-ratio mismatch (the split matches the weights)."""
    look, missing = _latest_look(window, "srm", bool(config.get("required", False)))
    if look is None:
        return missing  # type: ignore[return-value]
    p_value = (look.snapshot.get("srm") or {}).get("p_value")
    detail = f"{look.experiment.name}: SRM {'flagged' if look.srm_flagged else 'not flagged'}"
    return CheckResult("srm", FAIL if look.srm_flagged else PASS, detail, p_value)


CHECKS: dict[str, Callable[[Window, dict[str, Any]], CheckResult]] = {
    "min_requests": check_min_requests,
    "error_rate": check_error_rate,
    "latency": check_latency,
    "drift": check_drift,
    "workers_loaded": check_workers_loaded,
    "promql": check_promql,
    "experiment_verdict": check_experiment_verdict,
    "srm": check_srm,
}

# Settings each check accepts, with the type of its value (validated when a plan starts).
_NUMBERS = {
    "min_requests": {"count"},
    "error_rate": {"max_increase", "min_samples"},
    "latency": {"percentile", "max_ratio", "slack_ms", "min_samples"},
    "drift": {"max_psi"},
    "workers_loaded": set(),
    "promql": {"max", "min"},
    "experiment_verdict": set(),
    "srm": set(),
}
_FLAGS = {"drift": {"required"}, "experiment_verdict": {"required", "decided"}, "srm": {"required"}}


def _number(name: str, key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise GovernanceError("invalid", f"checks.{name}.{key} must be a non-negative number, not {value!r}.")
    return value


def checks_validated(raw: Any) -> dict[str, dict[str, Any]]:
    """A plan's checks: ``None`` means the defaults; names and settings are checked (400 otherwise)."""
    if raw is None:
        return {k: dict(v) for k, v in DEFAULT_CHECKS.items()}
    if not isinstance(raw, dict):
        raise GovernanceError("invalid", "checks must be a mapping of check name to its settings.")
    unknown = sorted(set(map(str, raw)) - set(CHECKS))
    if unknown:
        raise GovernanceError("invalid", f"Unknown checks {', '.join(unknown)}; known: {', '.join(CHECKS)}.")
    out: dict[str, dict[str, Any]] = {}
    for name, config in raw.items():
        config = {} if config is None or config is True else config
        if not isinstance(config, dict):
            raise GovernanceError("invalid", f"checks.{name} must be a mapping of settings.")
        allowed = _NUMBERS[name] | _FLAGS.get(name, set()) | ({"query"} if name == "promql" else set())
        extra = sorted(set(config) - allowed)
        if extra:
            raise GovernanceError("invalid", f"checks.{name}: unknown settings {', '.join(extra)}.")
        out[name] = {
            k: (bool(v) if k in ("required", "decided") else v if k == "query" else _number(name, k, v))
            for k, v in config.items()
        }
    if "promql" in out:
        _promql_validated(out["promql"])
    if "latency" in out and not 0 < out["latency"].get("percentile", 95) <= 100:
        raise GovernanceError("invalid", "checks.latency.percentile must be in (0, 100].")
    return out


def _promql_validated(config: dict[str, Any]) -> None:
    if not settings.ROLLOUT_PROMETHEUS_URL:
        raise GovernanceError("invalid", "checks.promql needs ROLLOUT_PROMETHEUS_URL to be configured.")
    if not isinstance(config.get("query"), str) or not config["query"].strip():
        raise GovernanceError("invalid", "checks.promql.query must be a PromQL expression.")
    if ("max" in config) == ("min" in config):
        raise GovernanceError("invalid", "checks.promql needs exactly one of max or min.")


def checks_evaluate(window: Window, checks: dict[str, dict[str, Any]]) -> list[CheckResult]:
    """Run every configured check on the window, in a stable order."""
    return [CHECKS[name](window, config) for name, config in sorted(checks.items())]
