"""Batch scoring jobs: a file uploaded to ``POST /predict/<endpoint>/jobs``, scored by a worker.

The files live in Django storage (``storages["batch"]``: local under ``var/`` by default, S3 in
the chart); the row holds their names, the job's state and its progress. See
``routing.serving.batch`` (the services) and docs/batch-jobs.md.
"""

from __future__ import annotations

import uuid

from django.db import models


class BatchJob(models.Model):
    """One scoring job: which endpoint and version, its files, its progress and outcome.

    ``progress`` is the share of the input read (bytes), written once per chunk. A worker
    claims the job with the job's lease (``registry.jobs``); a cancelled job stops at the next
    chunk. Files and row are deleted ``BATCH_JOB_RETENTION_DAYS`` after the job finished.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON lines"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey("routing.Endpoint", on_delete=models.CASCADE, related_name="batch_jobs")
    variant = models.CharField(
        max_length=100, help_text="The variant that scores it (the champion by default)."
    )
    model_name = models.CharField(max_length=256)
    model_version = models.PositiveIntegerField()
    token_name = models.CharField(max_length=100, blank=True, default="")
    input_format = models.CharField(max_length=8, choices=Format.choices)
    input_file = models.CharField(max_length=300)
    input_bytes = models.BigIntegerField(default=0)
    results_file = models.CharField(max_length=300, blank=True, default="")
    errors_file = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    rows = models.BigIntegerField(default=0, help_text="Rows scored.")
    error_rows = models.BigIntegerField(default=0, help_text="Rows refused (in the errors file).")
    message = models.TextField(blank=True, default="", help_text="Why it failed, when it did.")
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.endpoint_id}:{self.id} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
