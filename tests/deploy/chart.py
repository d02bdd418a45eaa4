"""Render the Helm chart with a real helm and index the manifests for the tests.

helm comes from ``.tools/bin/helm`` (``scripts/install-helm.sh``) or the PATH; without it the
tests skip, which fails the run under ``CI=true``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_tool
from tests.mlflow_server import REPO

CHART = REPO / "helm" / "controlplane"
RELEASE = "cp"
NAMESPACE = "ml"
FULLNAME = "cp-controlplane"

# The value sets CI renders: the defaults and every file in the chart's ci/ directory.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    **{p.stem.removesuffix("-values"): p for p in sorted((CHART / "ci").glob("*-values.yaml"))},
}


def helm() -> str:
    """The helm binary, or a skip (a failure under CI) when none is installed."""
    local = REPO / ".tools" / "bin" / "helm"
    return require_tool(str(local) if local.exists() else "helm", "renders the Helm chart")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120)


def template_args(value_set: str, *extra: str) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    values = VALUE_SETS[value_set]
    if values is not None:
        args += ["-f", str(values)]
    return [*args, *extra]


@dataclass(frozen=True)
class Manifests:
    """The documents of one ``helm template`` run, looked up by kind and name."""

    docs: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def has(self, kind: str, name: str) -> bool:
        return any(d["metadata"]["name"] == name for d in self.of_kind(kind))


@cache
def render(value_set: str) -> Manifests:
    result = run_helm(*template_args(value_set))
    assert result.returncode == 0, f"helm template ({value_set}) failed:\n{result.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(result.stdout) if d)
    return Manifests(docs)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet, Job or CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    """Environment variables by name: a plain value, or the ``valueFrom`` mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload).get("env", [])}


def control_plane_workloads(manifests: Manifests) -> list[dict[str, Any]]:
    """Every pod that runs the control plane's code: web, Celery worker and beat, the hook Jobs."""
    return [
        manifests.get("Deployment", f"{FULLNAME}-web"),
        manifests.get("Deployment", f"{FULLNAME}-worker"),
        manifests.get("Deployment", f"{FULLNAME}-beat"),
        *manifests.of_kind("Job"),
    ]
