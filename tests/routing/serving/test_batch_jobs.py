"""Batch scoring jobs: upload, score in chunks with the signature's checks, report, cancel, prune.

The scoring service is the one a worker runs (``batch_job_score``); here it is called in this
process so each test stays fast. ``tests/tasks/test_batch_jobs_on_workers.py`` runs jobs on real
Celery workers.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import mlflow.pyfunc
import pandas as pd
import pytest
from django.core.files.storage import storages
from django.utils import timezone

from registry.models import JobLock
from routing.models import BatchJob
from routing.serving.batch import batch_job_score, batch_jobs_prune
from tests.routing.helpers import breast_rows

pytestmark = pytest.mark.django_db
URL = "/predict/bj/jobs"


@pytest.fixture
def batch(serving):
    serving.endpoint("bj", [{"name": "v1", "role": "champion", "version": 1, "weight": 100}])
    serving.endpoint_tokens = {
        "batch": serving.token("batcher", scopes=["batch"]),
        "predict": serving.token("predictor", scopes=["predict"]),
    }
    serving.refresh()
    return serving


def _csv(columns: list[str], rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().encode()


def _submit(serving, body: bytes, token: str, content_type: str = "text/csv", query: str = ""):
    return serving.post(URL + query, body, token, content_type=content_type)


def _get(serving, path: str, token: str):
    return serving.client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_csv_job_scores_good_rows_like_pyfunc_and_lists_bad_rows_with_their_line_and_reason(
    batch, settings
):
    settings.BATCH_CHUNK_ROWS = 40  # several chunks, some with bad rows
    columns, rows = breast_rows(150)
    rows = [list(r) for r in rows]
    rows[3][0] = "abc"
    rows[50][5] = ""
    rows[51][2] = "inf"
    token = batch.endpoint_tokens["batch"]

    submitted = _submit(batch, _csv(columns, rows), token)
    job_id = submitted.json()["job"]
    queued = _get(batch, submitted.json()["status_url"], token).json()
    assert batch_job_score(job_id=job_id, holder="test") == "succeeded"
    status = _get(batch, submitted.json()["status_url"], token).json()
    results = list(csv.DictReader(io.StringIO(_body(_get(batch, status["results_url"], token)).decode())))
    errors = [json.loads(line) for line in _body(_get(batch, status["errors_url"], token)).splitlines()]

    assert submitted.status_code == 202 and submitted["Location"] == submitted.json()["status_url"]
    assert queued["status"] == "queued" and queued["results_url"] is None
    assert (status["status"], status["progress"], status["rows"], status["errors"]) == (
        "succeeded",
        1.0,
        147,
        3,
    )
    assert (status["variant"], status["model_version"]) == ("v1", 1)
    assert [(e["row"], e["line"], e["code"]) for e in errors] == [
        (3, 5, "wrong_type"),
        (50, 52, "missing_value"),
        (51, 53, "non_finite"),
    ]
    assert "mean radius" in errors[0]["message"] and "'abc'" in errors[0]["message"]
    good = [i for i in range(150) if i not in (3, 50, 51)]
    assert [int(r["row"]) for r in results] == good
    model = mlflow.pyfunc.load_model("models:/test-shared/1")
    expected = model.predict(pd.DataFrame([breast_rows(150)[1][i] for i in good], columns=columns))
    assert [int(r["prediction"]) for r in results] == [int(p) for p in expected]


def test_a_json_lines_job_scores_records_by_column_name(batch):
    columns, rows = breast_rows(5)
    lines = [json.dumps(dict(zip(columns, r, strict=True))) for r in rows]
    lines.insert(2, "{not json")
    lines.append(json.dumps({**dict(zip(columns, rows[0], strict=True)), "surprise": 1}))
    token = batch.endpoint_tokens["batch"]

    job_id = _submit(batch, "\n".join(lines).encode(), token, "application/x-ndjson").json()["job"]
    batch_job_score(job_id=job_id, holder="test")
    status = _get(batch, f"{URL}/{job_id}", token).json()
    results = [json.loads(x) for x in _body(_get(batch, status["results_url"], token)).splitlines()]
    errors = [json.loads(x) for x in _body(_get(batch, status["errors_url"], token)).splitlines()]

    assert (status["status"], status["rows"], status["errors"]) == ("succeeded", 5, 2)
    assert [r["row"] for r in results] == [0, 1, 3, 4, 5]
    assert [(e["row"], e["line"], e["code"]) for e in errors] == [
        (2, 3, "invalid_json"),
        (6, 7, "unknown_column"),
    ]


def test_a_header_the_model_does_not_know_fails_the_job_and_says_why(batch):
    columns, rows = breast_rows(3)
    token = batch.endpoint_tokens["batch"]
    job_id = _submit(batch, _csv(["nope", *columns[1:]], rows), token).json()["job"]

    assert batch_job_score(job_id=job_id, holder="test") == "failed"
    status = _get(batch, f"{URL}/{job_id}", token).json()
    assert (
        status["status"] == "failed" and "'nope'" in status["message"] and "mean radius" in status["message"]
    )


@pytest.mark.parametrize(
    ("who", "content_type", "query", "status", "code"),
    [
        (None, "text/csv", "", 401, "unauthorized"),
        ("predict", "text/csv", "", 403, "forbidden"),
        ("batch", "application/pdf", "", 415, "unsupported_media_type"),
        ("batch", "text/csv", "?variant=ghost", 404, "variant_not_found"),
    ],
)
def test_bad_submissions_get_a_clear_4xx_and_store_nothing(batch, who, content_type, query, status, code):
    columns, rows = breast_rows(2)
    token = batch.endpoint_tokens[who] if who else None
    response = _submit(batch, _csv(columns, rows), token, content_type, query)

    assert response.status_code == status and response.json()["error"]["code"] == code
    assert not BatchJob.objects.exists()


def _stored_files() -> set[str]:
    store = storages["batch"]
    dirs = store.listdir("jobs")[0] if store.exists("jobs") else []
    return {f"{d}/{f}" for d in dirs for f in store.listdir(f"jobs/{d}")[1]}


def test_an_upload_over_the_limit_is_refused_413_and_its_partial_file_deleted(batch, settings):
    settings.BATCH_MAX_UPLOAD_BYTES = 10_000
    columns, rows = breast_rows(100)
    before = _stored_files()
    response = _submit(batch, _csv(columns, rows), batch.endpoint_tokens["batch"])

    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert not BatchJob.objects.exists()
    assert _stored_files() == before


def test_an_unknown_endpoint_is_404_and_the_status_of_an_unknown_job_too(batch):
    token = batch.endpoint_tokens["batch"]
    response = batch.post("/predict/nowhere/jobs", b"a\n1\n", token, content_type="text/csv")
    missing = _get(batch, f"{URL}/00000000-0000-0000-0000-000000000000", token)

    assert response.status_code == 404 and response.json()["error"]["code"] == "endpoint_not_found"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"


def test_cancelling_a_queued_job_stops_it_before_it_runs(batch):
    columns, rows = breast_rows(3)
    token = batch.endpoint_tokens["batch"]
    job_id = _submit(batch, _csv(columns, rows), token).json()["job"]

    cancelled = batch.client.delete(f"{URL}/{job_id}", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    outcome = batch_job_score(job_id=job_id, holder="test")

    assert cancelled["status"] == "cancelled" and outcome == "nothing to do"
    assert BatchJob.objects.get(pk=job_id).rows == 0


def test_a_running_job_stops_at_its_next_chunk_when_cancelled(batch, settings, monkeypatch):
    from routing.serving import batch as batch_service

    settings.BATCH_CHUNK_ROWS = 10
    columns, rows = breast_rows(100)
    token = batch.endpoint_tokens["batch"]
    job_id = _submit(batch, _csv(columns, rows), token).json()["job"]
    real_write = batch_service._write

    def write_then_cancel(*args, **kwargs):
        real_write(*args, **kwargs)
        BatchJob.objects.filter(pk=job_id).update(cancel_requested=True)  # a DELETE arriving now

    monkeypatch.setattr(batch_service, "_write", write_then_cancel)
    assert batch_job_score(job_id=job_id, holder="test") == "cancelled"
    job = BatchJob.objects.get(pk=job_id)
    assert (job.status, job.rows, job.results_file) == ("cancelled", 10, "")


def test_jobs_finished_before_the_retention_period_are_deleted_with_their_files(batch):
    columns, rows = breast_rows(3)
    token = batch.endpoint_tokens["batch"]
    old, new = (_submit(batch, _csv(columns, rows), token).json()["job"] for _ in range(2))
    for job_id in (old, new):
        batch_job_score(job_id=job_id, holder="test")
    BatchJob.objects.filter(pk=old).update(finished_at=timezone.now() - timedelta(days=8))
    files = [BatchJob.objects.get(pk=old).input_file, BatchJob.objects.get(pk=old).results_file]

    assert batch_jobs_prune(older_than_days=7) == 1
    assert [str(pk) for pk in BatchJob.objects.values_list("pk", flat=True)] == [new]
    assert not any(storages["batch"].exists(f) for f in files)
    assert not JobLock.objects.filter(name__contains=old).exists()
    assert JobLock.objects.filter(name__contains=new).exists()


def test_the_admin_lists_jobs_with_a_progress_bar_each(batch, admin_user_all):
    columns, rows = breast_rows(3)
    job_id = _submit(batch, _csv(columns, rows), batch.endpoint_tokens["batch"]).json()["job"]
    BatchJob.objects.filter(pk=job_id).update(status="running", progress=0.42)
    batch.client.force_login(admin_user_all)

    page = batch.client.get("/admin/routing/batchjob/").content.decode()

    assert (
        job_id in page and '<progress class="batch-progress" value="0.4200" max="1"' in page and "42%" in page
    )
