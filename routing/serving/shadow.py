"""Shadow variants: a copy of some requests, predicted off the response path.

The request thread only draws whether to mirror and puts a job on a bounded queue; one
background thread per worker runs the shadow model, compares its answer with the one the
caller got, and records both the outcome and the agreement (metrics and the prediction log).
A full queue drops the copy (counted) rather than slow the caller down.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from monitoring import metrics
from routing.serving import dataplane
from routing.serving.payloads import Payload
from routing.serving.prediction_log import BUFFER, LogEntry, logged_inputs
from routing.serving.table import VariantRoute
from routing.serving.validation import Batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    endpoint: str
    variant: VariantRoute
    batch: Batch
    payload: Payload
    served: list[Any]
    request_id: str
    unit_key: str
    request_json: str = ""


def agreement(served: list[Any], shadow: list[Any]) -> float | None:
    """Share of rows where the shadow's answer equals the served one."""
    if not served or len(served) != len(shadow):
        return None
    return sum(1 for a, b in zip(served, shadow, strict=True) if a == b) / len(served)


def run_shadow(job: ShadowJob) -> float | None:
    """Predict with the shadow, record outcome and agreement; returns the agreement."""
    variant = job.variant
    started = time.perf_counter()
    try:
        batch = dataplane.batch_for(variant, job.payload, job.batch)
        outputs = dataplane.invoke(variant, batch)
    except Exception as exc:
        logger.warning("shadow %s on %s failed: %s", variant.name, job.endpoint, exc)
        metrics.record_shadow(job.endpoint, variant.name, variant.model_version, "server_error")
        return None
    elapsed_ms = (time.perf_counter() - started) * 1000
    agreed = agreement(job.served, outputs)
    metrics.record_shadow(
        job.endpoint,
        variant.name,
        variant.model_version,
        "success",
        None if agreed is None else agreed == 1.0,
    )
    BUFFER.record(
        LogEntry(
            request_id=job.request_id,
            endpoint=job.endpoint,
            variant=variant.name,
            model_name=variant.model_name,
            model_version=variant.model_version,
            **logged_inputs(job.request_json, batch.columns, batch.rows),
            outputs=outputs,
            latency_ms=elapsed_ms,
            unit_key=job.unit_key,
            is_shadow=True,
            agreement=agreed,
        )
    )
    return agreed


class ShadowRunner:
    """The bounded queue and its worker thread (one per process).

    ``queue_size`` defaults to ``SHADOW_QUEUE_SIZE``; ``start_worker=False`` leaves the queue
    undrained (a test of what a shadow too slow for its traffic costs).
    """

    def __init__(self, queue_size: int | None = None, start_worker: bool = True) -> None:
        self._queue: queue.Queue[ShadowJob] | None = None
        self._queue_size = queue_size
        self._start_worker = start_worker
        self._pid = 0
        self._lock = threading.Lock()
        self.dropped = 0

    def _ensure(self) -> queue.Queue[ShadowJob]:
        if self._queue is not None and self._pid == os.getpid():
            return self._queue
        with self._lock:
            if self._queue is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = queue.Queue(maxsize=self._queue_size or settings.SHADOW_QUEUE_SIZE)
                if self._start_worker:
                    threading.Thread(target=self._run, name="shadow", daemon=True).start()
            return self._queue

    def queued(self) -> list[ShadowJob]:
        """The jobs waiting for the worker thread, oldest first (tests, diagnostics)."""
        return list(self._ensure().queue)

    def maybe_mirror(self, job_for: Any, shadows: tuple[VariantRoute, ...]) -> int:
        """Queue a copy for each shadow whose mirror percentage this request falls in."""
        queued = 0
        for variant in shadows:
            if random.random() * 100 >= variant.mirror_percent:
                continue
            job = job_for(variant)
            try:
                self._ensure().put_nowait(job)
                queued += 1
            except queue.Full:
                self.dropped += 1
                metrics.record_shadow_dropped(job.endpoint, variant.name)
        return queued

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued job has run (tests, shutdown)."""
        q = self._ensure()
        deadline = time.monotonic() + timeout
        while q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        q = self._ensure()
        while True:
            job = q.get()
            try:
                run_shadow(job)
            except Exception:
                logger.exception("shadow job failed")
            finally:
                q.task_done()


RUNNER = ShadowRunner()
