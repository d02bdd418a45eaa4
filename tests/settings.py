"""Test settings: the real settings, with the values the test rig needs set first."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("MLFLOW_WEBHOOK_SECRET", "tests-webhook-secret")
os.environ.setdefault("CONTROLPLANE_VAR_DIR", tempfile.mkdtemp(prefix="controlplane-tests-"))

from controlplane.settings import *  # noqa: F403

# A file, not shared-cache memory: concurrent writers then wait on the lock (busy timeout,
# BEGIN IMMEDIATE) as they do in production instead of failing with "table is locked".
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
