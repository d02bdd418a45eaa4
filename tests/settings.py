"""Test settings: the real settings, with the values the test rig needs set first."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("MLFLOW_WEBHOOK_SECRET", "tests-webhook-secret")
os.environ.setdefault("CONTROLPLANE_VAR_DIR", tempfile.mkdtemp(prefix="controlplane-tests-"))

from controlplane.settings import *  # noqa: F403
