"""End to end with real MLflow and gunicorn: traffic through /predict, ground truth through
/feedback (the demo's own traffic client, as ``make run`` sends it), analysis by the command.

A challenger trained on shuffled labels is called "worse"; a challenger that is the champion's
own model registered again is never called better or worse; feedback for unknown request ids and
labels of the wrong type gets a per-item 4xx while the rest is accepted.
"""

from __future__ import annotations

import json
import re
import time

import mlflow.sklearn
import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from experiments.demo import demo_traffic
from tests.conftest import clone_version, load_script
from tests.routing.helpers import breast_rows
from tests.routing.serving.gunicorn_rig import Gunicorn, make_site

pytestmark = [pytest.mark.single_pass("postgresql"), pytest.mark.slow, pytest.mark.timeout(600)]

MODEL = "e2e-experiments"

SETUP = """
from registry.services import registry_sync
from registry.models import ModelVersion
from routing.models import Endpoint, Variant
from routing.governance.tokens import service_token_create
registry_sync(model_name="{model}")
v = {{mv.version: mv for mv in ModelVersion.objects.filter(registered_model__name="{model}")}}
for name, challenger in (("ab-worse", v[2]), ("ab-same", v[3])):
    ep = Endpoint.objects.create(name=name, registered_model=v[1].registered_model)
    Variant.objects.create(endpoint=ep, name="champ", role="champion", model_version=v[1], weight=50)
    Variant.objects.create(endpoint=ep, name="chall", role="challenger", model_version=challenger, weight=50)
print(service_token_create(actor="system", name="fb", all_endpoints=True, rate_limit_per_second=0,
                           scopes=["predict", "feedback"])[1])
"""

EXPERIMENTS = """
from experiments.services import experiment_create, experiment_start
for name in ("ab-worse", "ab-same"):
    e = experiment_create(actor="system", endpoint_name=name, name=name, primary_metric="accuracy",
                          minimum_effect=0.1, reason="e2e")
    experiment_start(actor="system", experiment_id=e.pk, reason="e2e")
"""


@pytest.fixture(scope="module")
def models(mlflow_server, trained_models) -> str:
    """v1: the scikit-learn champion; v2: the same pipeline trained on shuffled labels; v3: v1 again."""
    client = mlflow_server.client()
    client.create_registered_model(MODEL)
    champion = client.get_model_version(trained_models.sklearn_name, str(trained_models.sklearn_version))
    clone_version(client, MODEL, champion)
    sk = load_script("train_sklearn")
    x_train, x_val, y_train, y_val = sk.load_data()
    shuffled = np.random.default_rng(0).permutation(y_train.to_numpy())
    worse = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(
        x_train, shuffled
    )
    sk.log_and_register(MODEL, worse, mlflow.sklearn, {"model": "shuffled_labels"}, (x_train, x_val, y_val))
    clone_version(client, MODEL, champion)
    return MODEL


@pytest.fixture(scope="module")
def site(models, mlflow_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e-experiments")
    site = make_site(root, mlflow_server.url, FEEDBACK_ATTRIBUTION_WINDOW_SECONDS="3600")
    site.env["FB_TOKEN"] = site.manage("shell", "-c", SETUP.format(model=models)).strip().splitlines()[-1]
    site.manage("shell", "-c", EXPERIMENTS)
    server = Gunicorn(site, workers=2).start()
    yield site, server
    server.stop()


def _verdicts(site) -> dict[str, str]:
    out = site.manage("analyze_experiments")
    return dict(re.findall(r"^(ab-\w+): chall: (\w+)", out, flags=re.M))


def test_a_challenger_trained_on_shuffled_labels_is_worse_and_an_identical_one_is_not(site):
    site, server = site
    token = site.env["FB_TOKEN"]
    for endpoint in ("ab-worse", "ab-same"):
        counts = demo_traffic(
            base_url=server.url, endpoint=endpoint, token=token, rows_per_request=10,
            requests_per_second=25, label_share=1.0, duration=20, seed=1,
        )  # fmt: skip
        assert counts["errors"] == 0, (counts, server.log_text()[-3000:])
        assert counts["feedback_accepted"] == counts["feedback_sent"] > 1000, counts
    verdicts = _verdicts(site)
    assert verdicts["ab-worse"] == "worse", (verdicts, site.manage("analyze_experiments"))
    assert verdicts["ab-same"] in ("no_difference", "not_yet"), verdicts
    metrics = server.metrics()
    assert re.search(
        r'controlplane_feedback_total\{endpoint="ab-worse",outcome="accepted",variant="chall"\} [1-9]',
        metrics,
    )
    quality = re.findall(
        r'controlplane_variant_quality\{endpoint="ab-worse",metric="accuracy",model_version="(\d)",variant="\w+"\} ([\d.]+)',
        metrics,
    )
    by_version = {v: float(x) for v, x in quality}
    assert by_version["1"] > by_version["2"] + 0.2, by_version


def test_unknown_request_ids_and_bad_labels_get_a_per_item_4xx_through_gunicorn(site):
    site, server = site
    token = site.env["FB_TOKEN"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    columns, rows = breast_rows(2)
    answer = requests.post(
        f"{server.url}/predict/ab-same", headers=headers, timeout=10,
        data=json.dumps({"dataframe_split": {"columns": columns, "data": rows}}),
    ).json()  # fmt: skip
    items = [
        {"request_id": "never-answered", "label": 1},
        {"request_id": answer["request_id"], "row": 0, "label": {"class": 1}},
        {"request_id": answer["request_id"], "row": 1, "label": "benign"},
        {"request_id": answer["request_id"], "row": 0, "label": 0},
    ]
    for _ in range(20):  # the prediction-log row is written within about a second
        response = requests.post(
            f"{server.url}/feedback/ab-same", headers=headers, data=json.dumps({"items": items}), timeout=10
        )
        if response.json()["accepted"] == 1:
            break
        time.sleep(0.5)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["status"], r["code"]) for r in body["rejected"]] == [
        (0, 404, "unknown_request_id"),
        (1, 400, "invalid_label"),
        (2, 400, "invalid_label"),
    ]
