"""Batch scoring jobs: accept an upload, score it on a worker, report, cancel, forget.

- ``batch_job_create``: streams the request body into Django storage (``storages["batch"]``),
  never into memory, refusing more than ``BATCH_MAX_UPLOAD_BYTES``; writes the job row and,
  after commit, sends ``routing.score_batch_job``.
- ``batch_job_score`` (the task's service): takes the job's lease (``registry.jobs``; a message
  delivered again after its worker died restarts the job from the top, so no half-written
  results survive), loads the version, scores chunk after chunk (``routing.serving.batch_scoring``)
  into local temporary files, writes progress once per chunk, stops at the next chunk when the
  job is cancelled, and uploads the results and errors files at the end.
- ``batch_jobs_prune``: deletes the files and rows of jobs finished more than
  ``BATCH_JOB_RETENTION_DAYS`` ago.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from registry.jobs import SKIPPED, job_lease
from registry.models import JobLock, ModelVersion
from routing.models import BatchJob, Endpoint
from routing.serving.batch_scoring import Chunk, CountingReader, JobError, csv_chunks, jsonl_chunks
from routing.serving.errors import PayloadError
from routing.serving.inference import LoadedModel
from routing.serving.prediction_log import json_default
from routing.serving.table import EndpointRoute, TokenInfo

log = logging.getLogger(__name__)
SCORE_TASK = "routing.score_batch_job"
FORMATS = {
    "text/csv": BatchJob.Format.CSV,
    "application/x-ndjson": BatchJob.Format.JSONL,
    "application/jsonl": BatchJob.Format.JSONL,
}
_MODELS: dict[tuple[str, int], LoadedModel] = {}  # per worker process: the last version loaded


def storage() -> Any:
    return storages["batch"]


class _Limited:
    """The request body, read in chunks, refused once it passes ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.limit, self.size = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size if size and size > 0 else 1024 * 1024)
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadError(413, "payload_too_large", f"the file is larger than {self.limit} bytes")
        return data


def batch_variant(route: EndpointRoute, name: str) -> tuple[str, str, int]:
    """The variant a job uses (the champion unless named): its name, model and version."""
    variant = route.by_name.get(name) if name else route.champion
    if variant is None:
        raise PayloadError(
            404 if name else 503,
            "variant_not_found" if name else "no_variant_available",
            f"endpoint {route.name!r} has no serving variant {name!r}"
            if name
            else "the endpoint has no champion",
        )
    if variant.backend != "inprocess":
        raise PayloadError(
            400, "remote_variant", f"variant {variant.name!r} is remote; batch jobs score in process"
        )
    return variant.name, variant.model_name, variant.model_version


def batch_job_create(
    *, route: EndpointRoute, token: TokenInfo, variant_name: str, content_type: str, body: IO[bytes]
) -> BatchJob:
    """Store the upload and queue the job; 4xx ``PayloadError`` for a wrong type, size or variant."""
    fmt = FORMATS.get(content_type.split(";")[0].strip().lower())
    if fmt is None:
        raise PayloadError(
            415, "unsupported_media_type", f"send text/csv or application/x-ndjson, not {content_type!r}"
        )
    variant, model_name, version = batch_variant(route, variant_name)
    job_id = uuid.uuid4()
    name = f"jobs/{job_id}/input.{'csv' if fmt == BatchJob.Format.CSV else 'jsonl'}"
    upload = _Limited(body, settings.BATCH_MAX_UPLOAD_BYTES)
    try:
        name = storage().save(name, File(upload, name=name))
    except PayloadError:
        storage().delete(name)
        raise
    if upload.size == 0:
        storage().delete(name)
        raise PayloadError(400, "empty_batch", "the file is empty")
    with transaction.atomic():
        job = BatchJob.objects.create(
            id=job_id,
            endpoint=Endpoint.objects.get(name=route.name),
            variant=variant,
            model_name=model_name,
            model_version=version,
            token_name=token.name,
            input_format=fmt,
            input_file=name,
            input_bytes=upload.size,
        )
        transaction.on_commit(lambda: _send(str(job_id)))
    return job


def _send(job_id: str) -> None:
    from celery import current_app

    try:
        current_app.send_task(SCORE_TASK, args=(job_id,), retry=True, retry_policy={"max_retries": 2})
    except Exception:  # the job stays queued; batch_jobs_requeue (beat) sends it again
        log.warning("could not send %s(%s); beat will send it again", SCORE_TASK, job_id, exc_info=True)


def batch_job_cancel(*, job: BatchJob) -> BatchJob:
    """Cancel a job: a queued job at once, a running one at its next chunk; finished ones stay."""
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            return job
        job.cancel_requested = True
        if job.status == BatchJob.Status.QUEUED:
            job.status, job.finished_at = BatchJob.Status.CANCELLED, timezone.now()
        job.save(update_fields=["cancel_requested", "status", "finished_at"])
    return job


def _model_for(job: BatchJob) -> LoadedModel:
    from routing.serving.loader import load_version

    key = (job.model_name, job.model_version)
    if key not in _MODELS:
        mv = ModelVersion.objects.get(registered_model__name=job.model_name, version=job.model_version)
        _MODELS.clear()  # one version in memory at a time keeps the worker's memory bounded
        _MODELS[key] = load_version(job.model_name, job.model_version, mv.signature_inputs, mv.source)
    return _MODELS[key]


def _claim(job_id: str) -> BatchJob | None:
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        if job.cancel_requested:
            _finish(job, BatchJob.Status.CANCELLED)
            return None
        job.status, job.started_at, job.progress, job.rows, job.error_rows = (
            BatchJob.Status.RUNNING,
            timezone.now(),
            0,
            0,
            0,
        )
        job.save(update_fields=["status", "started_at", "progress", "rows", "error_rows"])
    return job


def _finish(job: BatchJob, status: str, **fields: Any) -> None:
    fields = {"status": status, "finished_at": timezone.now(), **fields}
    BatchJob.objects.filter(pk=job.pk).update(**fields)


def _lease_name(job_id: Any) -> str:
    return f"routing.batch_job:{job_id}"


def batch_job_score(*, job_id: str, holder: str) -> str:
    """Score one job (the task's body); returns what happened. Safe to run twice at once."""
    with job_lease(name=_lease_name(job_id), holder=holder) as mine:
        if not mine:
            return SKIPPED
        job = _claim(job_id)
        if job is None:
            return "nothing to do"
        try:
            model = _model_for(job)
        except Exception as exc:  # gone from MLflow, unreadable weights: the job cannot run
            log.exception(
                "batch job %s: model %s v%s failed to load", job.pk, job.model_name, job.model_version
            )
            _finish(job, BatchJob.Status.FAILED, message=f"the model could not be loaded: {exc}"[:2000])
            return "failed"
        try:
            return _run(job, model)
        except JobError as exc:
            _finish(job, BatchJob.Status.FAILED, message=str(exc))
            return "failed"


def _run(job: BatchJob, model: LoadedModel) -> str:
    ext = "csv" if job.input_format == BatchJob.Format.CSV else "jsonl"
    with tempfile.TemporaryDirectory(prefix="batch-") as tmp, storage().open(job.input_file, "rb") as raw:
        results, errors = Path(tmp) / f"results.{ext}", Path(tmp) / "errors.jsonl"
        stream = CountingReader(raw)
        chunks = csv_chunks if job.input_format == BatchJob.Format.CSV else jsonl_chunks
        rows = error_rows = 0
        with open(results, "w", encoding="utf-8") as out, open(errors, "w", encoding="utf-8") as err:
            if ext == "csv":
                out.write("row,prediction\n")
            for chunk in chunks(stream, model, settings.BATCH_CHUNK_ROWS):
                _write(out, err, chunk, ext)
                rows, error_rows = rows + len(chunk.ids), error_rows + len(chunk.errors)
                progress = min(0.99, stream.count / max(job.input_bytes, 1))
                BatchJob.objects.filter(pk=job.pk).update(progress=progress, rows=rows, error_rows=error_rows)
                if BatchJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
                    _finish(job, BatchJob.Status.CANCELLED)
                    return "cancelled"
        names = {}
        for kind, path in (("results", results), ("errors", errors)):
            with open(path, "rb") as fh:
                names[kind] = storage().save(f"jobs/{job.pk}/{path.name}", File(fh, name=path.name))
    _finish(
        job,
        BatchJob.Status.SUCCEEDED,
        progress=1.0,
        rows=rows,
        error_rows=error_rows,
        results_file=names["results"],
        errors_file=names["errors"],
    )
    return "succeeded"


def _cell(value: Any) -> str:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        text = str(value)
        return text if "," not in text and '"' not in text and "\n" not in text else json.dumps(text)
    return json.dumps(json.dumps(value, default=json_default))  # a structured prediction, quoted for CSV


def _write(out: IO[str], err: IO[str], chunk: Chunk, ext: str) -> None:
    if ext == "csv":
        out.write("".join(f"{i},{_cell(p)}\n" for i, p in zip(chunk.ids, chunk.predictions, strict=True)))
    else:
        out.write(
            "".join(
                json.dumps({"row": i, "prediction": p}, default=json_default) + "\n"
                for i, p in zip(chunk.ids, chunk.predictions, strict=True)
            )
        )
    err.write("".join(json.dumps(e) + "\n" for e in chunk.errors))


def batch_jobs_prune(*, older_than_days: int) -> int:
    """Delete jobs (files, then rows) that finished more than ``older_than_days`` days ago."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted = 0
    for job in BatchJob.objects.filter(finished_at__lt=cutoff).iterator():
        for name in (job.input_file, job.results_file, job.errors_file):
            if name:
                storage().delete(name)
        JobLock.objects.filter(name=_lease_name(job.pk)).delete()  # its lease row goes with it
        deleted += BatchJob.objects.filter(pk=job.pk).delete()[0]
    return deleted


def batch_jobs_requeue(*, older_than: timedelta) -> int:
    """Send again jobs queued for longer than ``older_than`` (their message was lost)."""
    stale = BatchJob.objects.filter(status=BatchJob.Status.QUEUED, created_at__lt=timezone.now() - older_than)
    ids = [str(pk) for pk in stale.values_list("pk", flat=True)[:100]]
    for job_id in ids:
        _send(job_id)
    return len(ids)
