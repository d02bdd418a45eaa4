"""The SDK in a notebook's place: against the running control plane (gunicorn) and real MLflow, it
starts a challenger, moves its share, predicts with DataFrames and sticky units, reads the audit
trail, meets the server's refusals as ``ControlPlaneError`` and retires the challenger; the same
calls through ``mlflow.deployments.get_deploy_client("controlplane")``."""

from __future__ import annotations

import pandas as pd
import pytest
from controlplane_client import ControlPlane, ControlPlaneError
from mlflow.deployments import get_deploy_client

from tests.routing.helpers import breast_rows

pytestmark = [pytest.mark.slow, pytest.mark.single_pass, pytest.mark.timeout(600)]


def _variants(cp: ControlPlane, endpoint: str) -> dict[str, tuple[str, int]]:
    return {v["name"]: (v["role"], v["weight"]) for v in cp.endpoint(endpoint)["variants"]}


def test_the_sdk_runs_a_challenger_from_start_to_retirement(live_control_plane, mlflow_server, monkeypatch):
    live = live_control_plane
    model = live.model()
    ControlPlane(live.url, api_token=live.ops_token).create_endpoint(
        "nb", model_name=model, champion_version=1, reason="launch"
    )
    cp = ControlPlane(live.url, token=live.service_token, api_token=live.scientist_token)

    cp.start_challenger("nb", version=2, percent=25, reason="try xgboost")
    cp.set_share("nb", "v2", 50, reason="half and half")

    assert _variants(cp, "nb") == {"v1": ("champion", 50), "v2": ("challenger", 50)}
    live.wait_until_served("nb", "v2")
    columns, rows = breast_rows(3)
    frame = pd.DataFrame(rows, columns=columns)
    first = cp.predict("nb", frame, unit_key="user-7")
    again = cp.predict("nb", frame, unit_key="user-7")
    forced = cp.predict("nb", frame.to_dict(orient="records"), variant="v2")
    assert len(first.predictions) == 3 and first.request_id and first.endpoint == "nb"
    assert again.variant == first.variant
    assert (forced.variant, forced.model_version, forced.model) == ("v2", 2, model)

    with pytest.raises(ControlPlaneError) as blank:
        cp.set_share("nb", "v2", 10, reason="  ")
    with pytest.raises(ControlPlaneError) as not_allowed:
        cp.rollback("nb", reason="panic")
    with pytest.raises(ControlPlaneError) as unknown:
        cp.endpoint("nope")
    with pytest.raises(ControlPlaneError) as bad_token:
        ControlPlane(live.url, token="not-a-token").predict("nb", frame)
    assert blank.value.status == 400 and "reason" in blank.value.message
    assert not_allowed.value.status == 403 and "routing.rollback_endpoint" in not_allowed.value.message
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    assert bad_token.value.status == 401

    monkeypatch.setenv("CONTROLPLANE_URL", live.url)
    monkeypatch.setenv("CONTROLPLANE_TOKEN", live.service_token)
    monkeypatch.setenv("CONTROLPLANE_API_TOKEN", live.scientist_token)
    deploy = get_deploy_client("controlplane")
    assert {d["name"] for d in deploy.list_deployments(endpoint="nb")} == {"nb/v1", "nb/v2"}
    assert len(deploy.predict("nb", frame).get_predictions()) == 3

    cp.retire_challenger("nb", "v2", reason="loses on recall")

    assert _variants(cp, "nb") == {"v1": ("champion", 100)}
    live.pushes_applied()  # a worker pushes aliases to MLflow after each change commits
    assert {a: int(v) for a, v in mlflow_server.client().get_registered_model(model).aliases.items()} == {
        "champion": 1
    }
    trail = [(e["action"], e["actor"], e["reason"]) for e in cp.audit_events(endpoint="nb")]
    assert trail == [
        ("routing.challenger_retired", "dana", "loses on recall"),
        ("routing.traffic_split_set", "dana", "half and half"),
        ("routing.challenger_started", "dana", "try xgboost"),
        ("routing.endpoint_created", "ops", "launch"),
    ]


def test_the_plugins_python_api_creates_an_endpoint_and_a_shadow_from_an_alias(
    live_control_plane, mlflow_server, monkeypatch
):
    live = live_control_plane
    model = live.model()
    mlflow_server.client().set_registered_model_alias(model, "candidate", "3")
    live.manage("sync_registry", "--model", model)  # what the webhook does live
    monkeypatch.setenv("CONTROLPLANE_TOKEN", live.service_token)
    monkeypatch.setenv("CONTROLPLANE_API_TOKEN", live.scientist_token)
    ops = get_deploy_client(f"controlplane:/{live.url}")
    ops.cp.http.api_token = live.ops_token  # creating an endpoint takes routing.add_endpoint
    created = ops.create_deployment(
        "alias-ep", f"models:/{model}/1", config={"role": "champion", "reason": "launch"}
    )
    deploy = get_deploy_client(f"controlplane:/{live.url}")

    shadow = deploy.create_deployment(
        "alias-ep/watch",
        f"models:/{model}@candidate",
        config={"role": "shadow", "percent": "20", "reason": "watch"},
    )
    removed = deploy.delete_deployment("watch", config={"reason": "seen enough"}, endpoint="alias-ep")

    assert (created["name"], created["role"], created["share"]) == ("alias-ep/v1", "champion", 1.0)
    assert (shadow["name"], shadow["role"], shadow["mirror_percent"]) == ("alias-ep/watch", "shadow", 20)
    assert shadow["model_uri"] == f"models:/{model}/3"
    assert removed is None
    assert deploy.get_deployment("alias-ep/watch")["role"] == "retired"
    assert [d["name"] for d in deploy.get_endpoint("alias-ep")["deployments"]] == ["alias-ep/v1"]
