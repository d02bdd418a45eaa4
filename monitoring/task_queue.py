"""``controlplane_task_queue_depth{queue}``: messages waiting in the broker, read at scrape time.

The depth lives in the broker (Redis, or the embedded broker under ``var/``), not in any
process, so a collector asks the broker on each scrape, from whichever web worker answers.
A broker that cannot be reached exports ``controlplane_task_broker_up 0`` and no depth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

COLLECTED_METRICS = {
    "controlplane_task_queue_depth": "gauge",
    "controlplane_task_broker_up": "gauge",
}


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue the workers consume (not counting those a worker holds)."""
    from controlplane.celery import app

    names = [app.conf.task_default_queue, *(q.name for q in app.conf.task_queues or [])]
    depths: dict[str, int] = {}
    with app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=0)  # a scrape must not wait for a dead broker
        channel = connection.default_channel
        for name in dict.fromkeys(names):
            # Not passive: kombu's passive check ignores the Redis key prefix and calls a queue
            # with messages missing. On Redis and the filesystem a declare creates nothing.
            depths[name] = channel.queue_declare(queue=name).message_count
    return depths


class TaskQueueCollector(Collector):
    """Queue depth per Celery queue, and whether the broker answered."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registration must not contact the broker.
        yield GaugeMetricFamily("controlplane_task_queue_depth", "", labels=["queue"])
        yield GaugeMetricFamily("controlplane_task_broker_up", "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "controlplane_task_queue_depth",
            "Background tasks waiting in the broker for a worker, by queue.",
            labels=["queue"],
        )
        up = 1.0
        try:
            for queue, count in queue_depths().items():
                depth.add_metric([queue], count)
        except Exception:  # a scrape must still answer when the broker is down
            logger.warning("reading the task queue depth for /metrics failed", exc_info=True)
            up = 0.0
        yield depth
        yield GaugeMetricFamily(
            "controlplane_task_broker_up", "1 when the last scrape could read the task queues.", value=up
        )


TASK_QUEUE_COLLECTOR = TaskQueueCollector()
