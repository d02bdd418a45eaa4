"""Real gunicorn: the master preloads the served versions from the local model cache before it forks.

The workers start holding the master's copies (copy-on-write), so a worker's private memory no
longer grows with every version served; what is not cached yet a worker still loads itself; an
XGBoost booster loaded before the fork still predicts on many threads in a worker (OpenMP is
not started in the master); ``SERVING_PRELOAD_MODELS=false`` turns it off.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from tests.routing.helpers import breast_rows
from tests.routing.serving.gunicorn_rig import Gunicorn, make_site, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.single_pass]

PRELOADED = re.compile(r"master preloaded (\d+) model versions")


def _private_mib(pid: int) -> float:
    fields = dict(line.split()[:2] for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    return (int(fields["Private_Clean:"]) + int(fields["Private_Dirty:"])) / 1024


def _predict(url: str, token: str, variant: str, rows: int) -> requests.Response:
    columns, data = breast_rows(500)
    body = {"dataframe_split": {"columns": columns, "data": (data * (rows // 500 + 1))[:rows]}}
    headers = {"Authorization": f"Bearer {token}", "X-Variant": variant, "Connection": "close"}
    return requests.post(f"{url}/predict/live", json=body, headers=headers, timeout=60)


def _run(site, preload: bool) -> tuple[list[int], list[float], list[tuple[int, float, int, int]]]:
    site.env["SERVING_PRELOAD_MODELS"] = str(preload).lower()
    server = Gunicorn(site, workers=2).start()
    try:
        wait_until(lambda: len(server.ready_lines()) == 2, 120, "two workers ready")
        token = site.env["OVERRIDE_TOKEN"]
        for rows in (1, 1500):  # the XGBoost challenger above 1,000 rows runs on its own threads
            if rows > 1:  # memory first: a worker that served the big batches holds more
                private = [_private_mib(pid) for pid in server.worker_pids()]
            for variant in ("champ", "chall"):
                for _ in range(4):  # on new connections: both workers
                    answer = _predict(server.url, token, variant, rows)
                    assert answer.status_code == 200, answer.text
                    assert len(answer.json()["predictions"]) == rows
        preloaded = [int(n) for n in PRELOADED.findall(server.log_text())]
        return preloaded, private, server.ready_lines()
    finally:
        server.stop()
        server.log.rename(server.log.with_suffix(f".{preload}.log"))


def test_workers_start_with_the_versions_the_master_loaded_from_the_cache(
    tmp_path, mlflow_server, trained_models
):
    site = make_site(tmp_path, mlflow_server.url)
    site.env["OVERRIDE_TOKEN"] = site.manage(
        "create_service_token", "override", "--endpoint", "live", "--can-override"
    ).split()[-1]
    # Cold cache: the master has nothing to preload; the workers download and fill the cache.
    cold_preloaded, _, cold = _run(site, preload=True)
    assert cold_preloaded == [0] and len(cold) == 2, (cold_preloaded, cold)
    own_copies_preloaded, own_copies, _ = _run(site, preload=False)
    preloaded, shared, warm = _run(site, preload=True)
    print(f"\nworker private memory (MiB): own copies {own_copies}, preloaded {shared}")
    assert own_copies_preloaded == [0] and preloaded == [2], (own_copies_preloaded, preloaded)
    # Both versions held from birth, and counted as the local cache's.
    assert all(loaded == cached == 2 for _, _, loaded, cached in warm), warm
    # Less private memory: the models (and the master's frozen objects) are shared.
    assert sum(shared) < sum(own_copies), (shared, own_copies)
    assert json.loads(site.manage("shell", "-c", _STATUS).strip().splitlines()[-1])["loaded"] == 2


_STATUS = """
import json
from routing.models import WorkerStatus
row = WorkerStatus.objects.live().order_by("-heartbeat_at").first()
print(json.dumps({"loaded": len(row.loaded)}))
"""
