"""What loading and serving a model imports, in one list, importable without Django.

Imported once per process before any thread of ours runs: two threads importing mlflow for the
first time at once (the refresher loading a model, a request syncing the registry for a webhook)
can leave it half-initialised for good (issue 10, item 1). gunicorn's master imports these before
it forks (``on_starting`` in ``controlplane/gunicorn.conf.py``), so every worker is born with them
and boots in a second or two instead of many (these imports are most of a worker's start, and
during a reload no worker accepts until a new one has booted); each worker imports them again in
``routing.serving.worker.worker_start``, a no-op then, and the only import under other servers.

Only third-party modules: importing them starts no thread and opens no connection, so sharing
them by fork is safe (unlike a model or a thread). After upgrading one of these libraries, restart
gunicorn rather than reload it (SIGHUP), or the workers keep the master's copy.
"""

from __future__ import annotations

import contextlib
import importlib

# An ImportError naming one of these means the worker's own imports are broken
# (``routing.serving.loader.store_is_broken``); any other is one version's missing dependency.
SERVING_IMPORTS = (
    "pandas",
    "sklearn",
    "xgboost",
    "skops.io",
    "cloudpickle",
    "mlflow",
    "mlflow.tracking",
    "mlflow.models",
    "mlflow.artifacts",
    "mlflow.pyfunc",
    "mlflow.sklearn",
    "mlflow.xgboost",
    "mlflow.store.artifact.artifact_repository_registry",
    "mlflow.store.artifact.models_artifact_repo",
    "mlflow.store.artifact.http_artifact_repo",
    "mlflow.store.artifact.local_artifact_repo",
    "mlflow.tracking.request_header.registry",  # imported by the first HTTP call to MLflow
)
# Imported too when present; their absence breaks nothing (pandas converts without pyarrow).
SERVING_IMPORTS_OPTIONAL = ("pyarrow.pandas_compat", "pyarrow.vendored.version")


def imports_warm() -> None:
    """Import every module of both lists on the calling thread (an ImportError of the first propagates)."""
    for name in SERVING_IMPORTS:
        importlib.import_module(name)
    for name in SERVING_IMPORTS_OPTIONAL:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
