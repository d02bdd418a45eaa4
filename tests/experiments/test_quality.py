"""Per-variant quality from feedback: the arithmetic against scikit-learn, the service over real
/feedback traffic, the gauge on /metrics, the command, and the periodic task on real workers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, roc_auc_score

from experiments.models import Feedback, VariantQuality
from experiments.quality import quality_compute
from experiments.quality_metrics import aggregate, score
from experiments.services import outcome_metric_declare
from tests.experiments.feedback_rig import predict, send

TWO_ARMS = [
    {"name": "champ", "role": "champion", "version": 1, "weight": 50},
    {"name": "chall", "role": "challenger", "version": 2, "weight": 50},
]


def test_classification_and_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    p1 = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 400), 0.01, 0.99)
    with_probs = aggregate([score([1 - p, p], int(y), None) for p, y in zip(p1, labels, strict=True)])
    assert with_probs["accuracy"][0] == pytest.approx(accuracy_score(labels, p1 > 0.5))
    assert with_probs["log_loss"][0] == pytest.approx(log_loss(labels, p1))
    assert with_probs["auc"][0] == pytest.approx(roc_auc_score(labels, p1))
    assert with_probs["accuracy"][1] == 400
    truth, guess = rng.normal(10, 3, 300), rng.normal(10, 3, 300)
    reg = aggregate([score(float(g), None, float(t)) for g, t in zip(guess, truth, strict=True)])
    assert reg["mae"][0] == pytest.approx(mean_absolute_error(truth, guess))
    assert reg["rmse"][0] == pytest.approx(math.sqrt(np.mean((truth - guess) ** 2)))
    assert "accuracy" not in reg and "mae" not in with_probs


def test_class_labels_compare_across_json_number_forms_but_not_types():
    assert score(1, 1.0, None).correct == 1.0
    assert score("a", "a", None).correct == 1.0
    assert score(1, True, None).correct == 0.0


@pytest.mark.django_db
def test_quality_from_real_feedback_matches_the_labels_and_shows_on_metrics(serving, client):
    serving.endpoint("q", TWO_ARMS)
    token = serving.token("q-svc", scopes=["predict", "feedback"])
    serving.refresh()
    truth = load_breast_cancer().target
    served: dict[str, list[tuple[int, int]]] = {"champ": [], "chall": []}
    items = []
    for start in range(0, 60, 5):
        answer = predict(serving, token, "q", n=5, start=start)
        for row, prediction in enumerate(answer["predictions"]):
            label = int(truth[start + row])
            served[answer["variant"]].append((prediction, label))
            items.append({"request_id": answer["request_id"], "row": row, "label": label})
    assert send(serving, token, "q", items).json()["accepted"] == 60
    assert quality_compute() >= 2
    for variant, pairs in served.items():
        if not pairs:
            continue
        row = VariantQuality.objects.get(endpoint="q", variant=variant, metric="accuracy")
        assert row.value == pytest.approx(sum(p == y for p, y in pairs) / len(pairs))
        assert row.count == len(pairs)
        assert 0 <= row.label_delay_seconds < 120
    exposition = client.get("/metrics").content.decode()
    assert (
        'controlplane_variant_quality{endpoint="q",metric="accuracy",model_version="1",variant="champ"}'
        in exposition
    )


@pytest.mark.django_db
def test_outcome_means_and_stale_rows_are_recomputed(serving):
    serving.endpoint("o", TWO_ARMS)
    token = serving.token("o-svc", scopes=["predict", "feedback"])
    serving.refresh()
    outcome_metric_declare(actor="system", endpoint_name="o", name="revenue")
    answer = predict(serving, token, "o", X_Unit_Key="buyer")
    send(serving, token, "o", [{"unit_key": "buyer", "metric": "revenue", "value": v} for v in (10, 20)])
    call_command("compute_quality", endpoint="o")
    row = VariantQuality.objects.get(endpoint="o", metric="outcome:revenue")
    assert (row.variant, row.value, row.count) == (answer["variant"], 15.0, 2)
    Feedback.objects.update(received_at=timezone.now() - timezone.timedelta(days=30))
    quality_compute(endpoint="o")
    assert not VariantQuality.objects.filter(endpoint="o").exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_given_the_quality_job_compute_it_once(celery_workers):
    from experiments.tasks import compute_quality
    from tests.celery_workers import task_runs, wait_until

    def runs() -> dict[str, float]:
        return {
            o: n
            for (name, o), n in task_runs(celery_workers.metrics_dir).items()
            if name == "experiments.compute_quality"
        }

    before = runs()
    compute_quality.delay()
    compute_quality.delay()
    wait_until(
        lambda: sum(runs().values()) - sum(before.values()) >= 2,
        timeout=90,
        what=f"two runs of compute_quality\n{celery_workers.logs()}",
    )
    after = runs()
    assert {k: after.get(k, 0) - before.get(k, 0) for k in ("success", "skipped")} == {
        "success": 1,
        "skipped": 1,
    }
