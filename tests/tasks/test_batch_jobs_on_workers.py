"""Batch scoring jobs on real Celery workers: submitted over HTTP, scored by a worker, read back."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.celery_workers import wait_until
from tests.routing.helpers import breast_rows, start_serving

pytestmark = [
    pytest.mark.single_pass("postgresql"),
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_a_worker_scores_a_submitted_csv_job_and_its_results_and_errors_are_served(
    settings, mlflow_server, trained_models, celery_workers
):
    serving = start_serving(settings)
    serving.endpoint("wj", [{"name": "v1", "role": "champion", "version": 1, "weight": 100}])
    token = serving.token("batcher", scopes=["batch"])
    serving.refresh()
    columns, rows = breast_rows(400)
    rows = [list(r) for r in rows]
    for i in (7, 250):
        rows[i][1] = "n/a"
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    submitted = serving.post("/predict/wj/jobs", body.getvalue(), token, content_type="text/csv")
    url = submitted.json()["status_url"]
    status = wait_until(
        lambda: (s := serving.client.get(url, **auth).json())["status"] in ("succeeded", "failed") and s,
        120,
        f"the job finishes\n{celery_workers.logs()}",
    )
    results = b"".join(serving.client.get(status["results_url"], **auth).streaming_content).decode()
    errors = b"".join(serving.client.get(status["errors_url"], **auth).streaming_content).decode()

    assert submitted.status_code == 202
    assert (status["status"], status["progress"], status["rows"], status["errors"]) == (
        "succeeded",
        1.0,
        398,
        2,
    )
    assert len(list(csv.DictReader(io.StringIO(results)))) == 398
    assert [(e["row"], e["line"]) for e in map(json.loads, errors.splitlines())] == [(7, 9), (250, 252)]


def test_a_worker_killed_mid_job_leaves_no_results_and_the_redelivered_job_completes_from_the_top(
    settings, monkeypatch, mlflow_server, trained_models, celery_rig
):
    import time
    import uuid

    from routing.models import BatchJob
    from routing.serving import batch as batch_service
    from routing.tasks import score_batch_job

    quick = {"CELERY_VISIBILITY_TIMEOUT_SECONDS": "10", "CELERY_TASK_TIME_LIMIT_SECONDS": "9"}
    serving = start_serving(settings)
    serving.endpoint("kj", [{"name": "v1", "role": "champion", "version": 1, "weight": 100}])
    token = serving.token("batcher", scopes=["batch"])
    serving.refresh()
    columns, rows = breast_rows(500)
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows * 100)  # 50,000 rows
    monkeypatch.setattr(batch_service, "_send", lambda job_id: None)  # sent below, to our queue
    job_id = serving.post("/predict/kj/jobs", body.getvalue(), token, content_type="text/csv").json()["job"]
    queue = f"batch-kill-{uuid.uuid4().hex[:8]}"
    doomed = celery_rig.start_worker("batch-doomed", queues=[queue], BATCH_CHUNK_ROWS="100", **quick)
    doomed.wait_ready()
    score_batch_job.apply_async((job_id,), queue=queue)
    taken_at = time.monotonic()

    wait_until(lambda: BatchJob.objects.get(pk=job_id).rows > 0, 60, f"the job to start\n{celery_rig.logs()}")
    doomed.kill()
    killed = BatchJob.objects.get(pk=job_id)
    assert (killed.status, killed.results_file) == ("running", "")
    assert 0 < killed.rows < 50_000, "the job finished before the kill: make it slower"

    rescuer = celery_rig.start_worker("batch-rescuer", queues=[queue], **quick)
    try:
        wait_until(
            lambda: BatchJob.objects.get(pk=job_id).status == "succeeded",
            90,
            f"the rescue\n{celery_rig.logs()}",
        )
    finally:
        rescuer.stop()
    done = BatchJob.objects.get(pk=job_id)
    results = list(
        csv.DictReader(io.StringIO(batch_service.storage().open(done.results_file).read().decode()))
    )
    assert time.monotonic() - taken_at >= 10, "redelivered before the visibility timeout"
    assert (done.rows, done.error_rows) == (50_000, 0)
    assert [int(r["row"]) for r in results] == list(range(50_000))
