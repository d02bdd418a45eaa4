"""Run in a fresh interpreter by ``test_worker_start``: a new gunicorn worker's first model load
racing an MLflow webhook's registry sync (issue 10, item 1).

What a gunicorn worker does, in order: the master reads ``controlplane/gunicorn.conf.py``, the
worker loads ``controlplane.wsgi`` and calls ``post_worker_init``. Then, as on a fresh
``make run``, the demo's endpoint appears in the database and two threads touch MLflow for the
first time at once: the routing table's refresher loading the champion, and the request thread
syncing the registry for the webhook that announced it. The webhook's sync starts
``RACE_JITTER`` seconds after the refresher began importing mlflow.

Prints one JSON line: the errors of both threads, whether the champion was loaded, a later load's
error, and which modules of mlflow, scikit-learn, XGBoost or pandas were first imported after the
start hook (each one is a lazy import two threads can race on).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
HEAVY = ("mlflow", "sklearn", "xgboost", "pandas", "skops", "scipy", "pyarrow", "cloudpickle")


class StubWorker:
    """The two attributes of gunicorn's worker the hooks use."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.log = logging.getLogger("gunicorn.error")
        self.exit_requested = False


def heavy_modules() -> set[str]:
    return {m for m in sys.modules if m.split(".")[0] in HEAVY}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    spec = importlib.util.spec_from_file_location("gunicorn_conf", REPO / "controlplane" / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)  # what the master does with -c
    import controlplane.wsgi  # noqa: F401  (what load_wsgi does in the worker)

    conf.post_worker_init(StubWorker())
    before = heavy_modules()

    from registry.models import ModelVersion, RegisteredModel
    from registry.services import registry_sync
    from routing.models import Endpoint, Variant
    from routing.serving.table import TABLE

    model = RegisteredModel.objects.create(name=os.environ["RACE_MODEL"])
    mv = ModelVersion.objects.create(
        registered_model=model, version=int(os.environ["RACE_VERSION"]), status="READY",
        source=os.environ["RACE_SOURCE"], run_id=os.environ["RACE_RUN_ID"],
    )  # fmt: skip
    endpoint = Endpoint.objects.create(name="race", registered_model=model)
    Variant.objects.create(endpoint=endpoint, name="champ", role="champion", model_version=mv, weight=100)

    errors: list[str] = []
    barrier = threading.Barrier(2)

    def refresher() -> None:
        barrier.wait()
        try:
            TABLE.refresh()
        except BaseException as exc:  # every failure is the finding
            errors.append(f"refresher: {type(exc).__name__}: {exc}")

    def webhook() -> None:
        barrier.wait()
        # The delivery lands while the refresher is inside its first import of mlflow (at once
        # when mlflow was imported before the threads started), give or take the jitter.
        deadline = time.monotonic() + 30
        while "mlflow" not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(float(os.environ.get("RACE_JITTER", "0")))
        try:
            registry_sync(model_name=os.environ["RACE_WEBHOOK_MODEL"])
        except BaseException as exc:
            errors.append(f"webhook: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=refresher), threading.Thread(target=webhook)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    champion = TABLE.current().endpoints["race"].champion
    later = ""
    try:
        import mlflow

        mlflow.version.VERSION  # what a half-imported mlflow fails on
    except BaseException as exc:
        later = f"{type(exc).__name__}: {exc}"
    print(
        json.dumps(
            {
                "errors": errors,
                "champion_loaded": champion is not None and champion.can_serve,
                "load_error": champion.load_error if champion else "no champion",
                "later": later,
                "imported_after_start": sorted(heavy_modules() - before),
            }
        )
    )


if __name__ == "__main__":
    main()
