"""The rate limiter: shared through Redis in one round trip, and failing open (counted) when Redis fails.

The shared Redis at 127.0.0.1:6379 is used with a key prefix of this test session's own; the
outage tests start a private ``redis-server`` on a free port and kill it (never the shared one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY

from routing.serving.ratelimit import RateLimiter
from tests.conftest import require_tool
from tests.mlflow_server import free_port
from tests.routing.helpers import breast_rows

SHARED_REDIS = "redis://127.0.0.1:6379/0"
COLUMNS, ROWS = breast_rows(1)
BODY = {"dataframe_split": {"columns": COLUMNS, "data": ROWS}}


class PrivateRedis:
    """A ``redis-server`` of this test's own, without persistence, that the test may kill."""

    def __init__(self, tmp_path: Path) -> None:
        self.binary = require_tool("redis-server", "the rate limiter's outage tests stop their own Redis")
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def prefix() -> str:
    return f"test-rl-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _use(settings, url: str, prefix: str) -> None:
    settings.PREDICT_RATE_LIMIT_STORAGE_URL = url
    settings.PREDICT_RATE_LIMIT_KEY_PREFIX = prefix
    settings.PREDICT_RATE_LIMIT_RETRY_SECONDS = 0.5


def _failed_open(endpoint: str) -> float:
    return (
        REGISTRY.get_sample_value("controlplane_rate_limit_failed_open_total", {"endpoint": endpoint}) or 0.0
    )


def _wait_for_a_fresh_second() -> None:
    # A fixed window is one wall-clock second: start early in one so a test does not straddle two.
    fraction = time.time() % 1
    if fraction > 0.5:
        time.sleep(1.02 - fraction)


def test_two_workers_share_one_limit_through_redis(settings, prefix):
    _use(settings, SHARED_REDIS, prefix)
    worker_a, worker_b = RateLimiter(), RateLimiter()
    try:
        _wait_for_a_fresh_second()
        allowed = [worker.allow(7, 5, "e") for _ in range(5) for worker in (worker_a, worker_b)]
        assert allowed.count(True) == 5 and allowed[:5] == [True] * 5
        assert allowed[5:] == [False] * 5
    finally:
        worker_a.reset()


def test_one_request_costs_the_store_one_round_trip(settings, private_redis, prefix):
    _use(settings, private_redis.url, prefix)
    limiter = RateLimiter()
    limiter.allow(1, 1000, "e")  # loads the Lua script once
    client = redis.Redis(port=private_redis.port)
    client.config_resetstat()
    for _ in range(50):
        limiter.allow(1, 1000, "e")
    calls = {
        name.removeprefix("cmdstat_"): stat["calls"] for name, stat in client.info("commandstats").items()
    }
    # One EVALSHA per request; INCRBY and EXPIRE run inside the script, on the server.
    assert calls.pop("evalsha") == 50
    assert set(calls) <= {"incrby", "expire", "config|resetstat"}, calls


def test_the_limiter_fails_open_and_counts_it_while_redis_is_down_then_limits_again(
    settings, private_redis, prefix
):
    _use(settings, private_redis.url, prefix)
    limiter = RateLimiter()
    _wait_for_a_fresh_second()
    assert [limiter.allow(3, 2, "rl-outage") for _ in range(3)] == [True, True, False]
    private_redis.kill()
    before = _failed_open("rl-outage")
    started = time.perf_counter()
    assert all(limiter.allow(3, 2, "rl-outage") for _ in range(200))
    assert time.perf_counter() - started < 2.0  # one refused connection, then the retry pause
    assert _failed_open("rl-outage") - before == 200
    private_redis.start()  # same port, empty
    time.sleep(settings.PREDICT_RATE_LIMIT_RETRY_SECONDS + 0.1)
    _wait_for_a_fresh_second()
    assert [limiter.allow(3, 2, "rl-outage") for _ in range(3)] == [True, True, False]


def test_a_store_that_hangs_costs_a_request_its_timeout_not_more(settings, prefix):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers: a frozen Redis
    try:
        _use(settings, f"redis://127.0.0.1:{listener.getsockname()[1]}/0", prefix)
        settings.PREDICT_RATE_LIMIT_TIMEOUT_SECONDS = 0.2
        limiter = RateLimiter()
        started = time.perf_counter()
        assert limiter.allow(1, 1, "rl-hang") and limiter.allow(1, 1, "rl-hang")
        assert time.perf_counter() - started < 1.5
    finally:
        listener.close()


@pytest.mark.django_db
def test_predict_answers_while_the_rate_limit_store_is_down(serving, settings, private_redis, prefix):
    _use(settings, private_redis.url, prefix)
    serving.endpoint("rl", [{"name": "champ", "role": "champion", "version": 1, "weight": 100}])
    token = serving.token(rate_limit_per_second=1)
    serving.refresh()
    _wait_for_a_fresh_second()
    assert serving.post("/predict/rl", BODY, token).status_code == 200
    assert serving.post("/predict/rl", BODY, token).status_code == 429
    private_redis.kill()
    before = _failed_open("rl")
    answers = [serving.post("/predict/rl", BODY, token).status_code for _ in range(5)]
    assert answers == [200] * 5
    assert _failed_open("rl") - before == 5


def test_the_limiter_uses_cache_url_when_it_is_redis_and_refuses_another_store():
    from tests.controlplane.test_settings import REPO

    def load(env: dict[str, str]) -> subprocess.CompletedProcess:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "CACHE_", "PREDICT_"))
        }
        base.update({"DJANGO_SECRET_KEY": "k" * 50, "CONTROLPLANE_VAR_DIR": "/tmp/cp-settings-test", **env})
        code = "import controlplane.settings as s; print(s.PREDICT_RATE_LIMIT_STORAGE_URL)"
        return subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=base, capture_output=True, text=True, timeout=60
        )

    assert load({}).stdout.strip() == "memory://"
    assert load({"CACHE_URL": "redis://127.0.0.1:6379/3"}).stdout.strip() == "redis://127.0.0.1:6379/3"
    refused = load({"PREDICT_RATE_LIMIT_STORAGE_URL": "memcached://x"})
    assert (
        refused.returncode != 0
        and "PREDICT_RATE_LIMIT_STORAGE_URL" in refused.stderr.strip().splitlines()[-1]
    )
