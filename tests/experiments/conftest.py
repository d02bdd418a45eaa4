"""Fixtures for experiments' tests: the /predict rig of routing's tests plus a synchronous
feedback writer (a test decides when feedback is written)."""

from __future__ import annotations

import pytest

from experiments.feedback_writer import FEEDBACK_BUFFER
from tests.routing.helpers import Serving, start_serving


@pytest.fixture
def serving(settings, db, mlflow_server, trained_models) -> Serving:
    settings.FEEDBACK_WRITE_IN_BACKGROUND = False
    FEEDBACK_BUFFER.reset()
    return start_serving(settings)
