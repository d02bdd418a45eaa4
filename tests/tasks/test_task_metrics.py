"""Task metrics: runs and durations recorded by real workers, queue depth read from the broker."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from kombu import pools as kombu_pools

from controlplane.celery import app
from monitoring.tasks import compute_drift
from registry.models import JobLock
from registry.tasks import sync_model
from registry.webhooks import signature_for
from tests.celery_workers import wait_until
from tests.mlflow_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def _conf(**values: object) -> Iterator[None]:
    """Change the Celery app's configuration for one test, dropping its cached connections."""
    if "broker_url" in values:  # Celery resolved these from broker_url at start-up
        values = {**values, "broker_read_url": values["broker_url"], "broker_write_url": values["broker_url"]}
    saved = {k: app.conf[k] for k in values}

    def reset_pools() -> None:
        kombu_pools.reset()  # kombu's process-wide producer pools, keyed by connection
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.update(values)
    reset_pools()
    try:
        yield
    finally:
        app.conf.update(saved)
        reset_pools()


def _scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_the_queue_depth_is_read_from_the_broker_at_scrape_time(client, celery_rig):
    queue = f"depth-{uuid.uuid4().hex[:8]}"
    with _conf(task_default_queue=queue):
        for _ in range(3):
            sync_model.apply_async(("nobody-consumes-this",), queue=queue)
        text = _scrape(client)
        assert f'controlplane_task_queue_depth{{queue="{queue}"}} 3.0' in text
        assert "controlplane_task_broker_up 1.0" in text
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)
        assert f'controlplane_task_queue_depth{{queue="{queue}"}} 0.0' in _scrape(client)


def test_a_broker_that_is_down_gives_broker_up_0_and_the_scrape_still_answers(client, celery_rig):
    with _conf(broker_url="redis://127.0.0.1:9/0"):
        text = _scrape(client)
    assert "controlplane_task_broker_up 0.0" in text
    assert "controlplane_task_queue_depth{" not in text


def test_the_webhook_answers_503_when_the_broker_is_down_and_the_next_delivery_tries_again(
    client, celery_rig
):
    raw = json.dumps({"entity": "model_version", "action": "created", "data": {"name": "m"}}).encode()

    def deliver():
        delivery, timestamp = str(uuid.uuid4()), str(int(time.time()))
        return client.post(
            "/hooks/mlflow",
            raw,
            content_type="application/json",
            HTTP_X_MLFLOW_SIGNATURE=signature_for(settings.MLFLOW_WEBHOOK_SECRET, delivery, timestamp, raw),
            HTTP_X_MLFLOW_TIMESTAMP=timestamp,
            HTTP_X_MLFLOW_DELIVERY_ID=delivery,
        )

    with _conf(broker_url="redis://127.0.0.1:9/0"):
        started = time.monotonic()
        response = deliver()
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "queue_unavailable"
        assert time.monotonic() - started < 10
    assert JobLock.objects.get(name="registry.sync_model.pending:m").pending_since is None
    queue = f"retry-{uuid.uuid4().hex[:8]}"
    with _conf(task_default_queue=queue, task_default_routing_key=queue):
        second = deliver()
        assert second.status_code == 202, second.content
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(queue)


@pytest.mark.slow
def test_a_worker_in_its_own_pod_serves_its_task_runs_and_durations_on_its_metrics_port(celery_rig, tmp_path):
    port, queue = free_port(), f"metrics-{uuid.uuid4().hex[:8]}"
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "counter_stale.db").write_bytes(b"left by a previous container")
    worker = celery_rig.start_worker(
        "metrics",
        queues=[queue],
        CELERY_WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    )
    try:
        worker.wait_ready()
        compute_drift.apply_async(queue=queue)

        def scraped() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            return text if 'task="monitoring.compute_drift"' in text else ""

        text = wait_until(scraped, timeout=60, what=f"the worker's metrics\n{celery_rig.logs()}")
    finally:
        worker.stop()
    assert 'controlplane_task_runs_total{outcome="success",task="monitoring.compute_drift"} 1.0' in text
    assert 'controlplane_task_duration_seconds_count{task="monitoring.compute_drift"} 1.0' in text
