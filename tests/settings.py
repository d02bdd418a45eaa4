"""Test settings: the real settings, with the values the test rig needs set first."""

from __future__ import annotations

import os
import tempfile
import uuid

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("MLFLOW_WEBHOOK_SECRET", "tests-webhook-secret")
os.environ.setdefault("CONTROLPLANE_VAR_DIR", tempfile.mkdtemp(prefix="controlplane-tests-"))
# Celery: the shared Redis, with a key prefix of this session's own (tests/celery_workers.py).
os.environ.setdefault("CELERY_BROKER_URL", os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
os.environ.setdefault("CELERY_BROKER_KEY_PREFIX", f"controlplane-tests-{uuid.uuid4().hex[:12]}:")
# The checkout's .env (written by `make run`) belongs to the local server, never to the tests.
os.environ.setdefault("CONTROLPLANE_ENV_FILE", "")

from controlplane.settings import *  # noqa: F403

# A file, not shared-cache memory: concurrent writers then wait on the lock (busy timeout,
# BEGIN IMMEDIATE) as they do in production instead of failing with "table is locked".
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
