"""The real ``mlflow deployments`` CLI, with the controlplane plugin installed, against a running
control plane (gunicorn) and a real MLflow server: create a challenger, change its share, predict,
get, list, delete, promote; the control plane's state is read back through its API and MLflow's
aliases through MLflow."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from controlplane_client import ControlPlane

from tests.clients.conftest import LiveControlPlane
from tests.routing.helpers import breast_rows

# The control plane under test runs on a SQLite file of its own whatever DATABASE_URL says, so
# the PostgreSQL pass would only repeat it.
pytestmark = [pytest.mark.slow, pytest.mark.single_pass, pytest.mark.timeout(900)]

MLFLOW = Path(sys.executable).with_name("mlflow")


def deployments(live: LiveControlPlane, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``mlflow deployments ARGS`` in a subprocess, as the data scientist (echoed for the report)."""
    done = subprocess.run(
        [str(MLFLOW), "deployments", *args], env=live.env(**env), capture_output=True, text=True, timeout=300
    )
    print(
        f"$ mlflow deployments {' '.join(args)}\n{done.stdout}{done.stderr[-2000:]}[exit {done.returncode}]"
    )
    return done


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"{done.args}\nstdout: {done.stdout}\nstderr: {done.stderr[-3000:]}"
    return done.stdout


def weights(cp: ControlPlane, endpoint: str) -> dict[str, tuple[str, int]]:
    return {v["name"]: (v["role"], v["weight"]) for v in cp.endpoint(endpoint)["variants"]}


def aliases(live, mlflow_server, model: str) -> dict[str, int]:
    live.pushes_applied()  # a worker pushes aliases to MLflow after each change commits
    return {a: int(v) for a, v in mlflow_server.client().get_registered_model(model).aliases.items()}


def rows_file(tmp_path: Path, n: int = 3) -> Path:
    columns, rows = breast_rows(n)
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([dict(zip(columns, row, strict=True)) for row in rows]))
    return path


def test_the_cli_starts_a_challenger_changes_its_share_predicts_lists_and_retires_it(
    live_control_plane, mlflow_server, tmp_path
):
    live = live_control_plane
    model = live.model()
    ops = ControlPlane(live.url, api_token=live.ops_token)
    ops.create_endpoint("e2e", model_name=model, champion_version=1, reason="launch")

    created = ok(deployments(live, "create", "-t", "controlplane", "--name", "e2e", "-m", f"models:/{model}/2",
                             "-C", "percent=10", "-C", "reason=try xgboost"))  # fmt: skip

    assert "python_function deployment e2e/v2 is created" in created
    assert weights(ops, "e2e") == {"v1": ("champion", 90), "v2": ("challenger", 10)}
    assert aliases(live, mlflow_server, model) == {"champion": 1, "challenger": 2}

    updated = ok(deployments(live, "update", "-t", "controlplane", "--name", "e2e/v2",
                             "-C", "percent=30", "-C", "reason=no regressions in a day"))  # fmt: skip

    assert "Deployment e2e/v2 is updated (with flavor python_function)" in updated
    assert weights(ops, "e2e") == {"v1": ("champion", 70), "v2": ("challenger", 30)}
    (split,) = ops.audit_events(endpoint="e2e", action="routing.traffic_split_set")
    assert (split["actor"], split["reason"]) == ("dana", "no regressions in a day")

    live.wait_until_served("e2e", "v2")
    rows = rows_file(tmp_path)
    forced = json.loads(
        ok(deployments(live, "predict", "-t", "controlplane", "--name", "e2e/v2", "-I", str(rows)))
    )
    routed = json.loads(
        ok(deployments(live, "predict", "-t", "controlplane", "--endpoint", "e2e", "-I", str(rows)))
    )

    assert (forced["variant"], forced["model_version"], len(forced["predictions"])) == ("v2", 2, 3)
    assert (
        routed["endpoint"] == "e2e" and routed["variant"] in ("v1", "v2") and len(routed["predictions"]) == 3
    )

    listed = ok(deployments(live, "list", "-t", "controlplane"))
    got = ok(deployments(live, "get", "-t", "controlplane", "--name", "e2e/v2"))

    names = {d["name"]: d for d in ast.literal_eval(listed.split("\n", 1)[1].strip())}
    assert {"e2e/v1", "e2e/v2"} <= set(names)
    assert names["e2e/v2"]["model_uri"] == f"models:/{model}/2" and names["e2e/v2"]["share"] == 0.3
    assert "role: challenger" in got and "share: 0.3" in got and "weight: 30" in got

    typo = deployments(live, "create", "-t", "controlplane", "--name", "e2e", "-m", f"models:/{model}/3",
                       "-C", "precent=10", "-C", "reason=typo")  # fmt: skip
    assert typo.returncode == 1 and "Error: controlplane: create does not take -C precent" in typo.stderr
    assert "Traceback" not in typo.stderr

    deleted = ok(deployments(live, "delete", "-t", "controlplane", "--name", "e2e/v2", "-C", "reason=loses"))
    again = ok(deployments(live, "delete", "-t", "controlplane", "--name", "e2e/v2", "-C", "reason=loses"))

    assert "Deployment e2e/v2 is deleted" in deleted and "is deleted" in again
    assert weights(ops, "e2e") == {"v1": ("champion", 100)}
    assert aliases(live, mlflow_server, model) == {"champion": 1}
    assert "role: retired" in ok(deployments(live, "get", "-t", "controlplane", "--name", "e2e/v2"))


def test_the_cli_promotes_a_challenger_with_the_url_in_the_target_uri(live_control_plane, mlflow_server):
    live = live_control_plane
    model = live.model()
    ControlPlane(live.url, api_token=live.ops_token).create_endpoint(
        "promo", model_name=model, champion_version=1, reason="launch"
    )
    target = f"controlplane:/{live.url}"

    ok(deployments(live, "create", "-t", target, "--endpoint", "promo", "--name", "candidate", "-m",
                   f"models:/{model}/3", "-C", "percent=20", "-C", "reason=retrained", CONTROLPLANE_URL=""))  # fmt: skip
    promoted = ok(deployments(live, "update", "-t", target, "--name", "promo/candidate", "-C", "promote=true",
                              "-C", "reason=better for a week", CONTROLPLANE_URL=""))  # fmt: skip
    endpoint = ok(deployments(live, "get", "-t", target, "--name", "promo", CONTROLPLANE_URL=""))

    assert "Deployment promo/candidate is updated" in promoted
    assert aliases(live, mlflow_server, model) == {"champion": 3}
    assert "'name': 'promo/candidate'" in endpoint and "'role': 'champion'" in endpoint
    tags = mlflow_server.client().get_model_version(model, "3").tags
    assert (
        tags["controlplane.promoted_by"] == "dana"
        and tags["controlplane.promotion_reason"] == "better for a week"
    )
    refused = deployments(live, "delete", "-t", target, "--name", "promo/candidate", "-C", "reason=x",
                          CONTROLPLANE_URL="")  # fmt: skip
    assert refused.returncode == 1 and "is the champion and cannot be deleted" in refused.stderr
