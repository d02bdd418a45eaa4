"""Helpers shared by experiments' HTTP tests: predict, flush the log, send feedback."""

from __future__ import annotations

from typing import Any

from experiments.feedback_writer import FEEDBACK_BUFFER
from routing.serving.prediction_log import BUFFER
from tests.routing.helpers import Serving, breast_rows


def predict(
    serving: Serving, token: str, endpoint: str, n: int = 1, start: int = 0, **headers: str
) -> dict[str, Any]:
    """One /predict call of ``n`` real rows; the prediction-log row is written before returning."""
    columns, rows = breast_rows(n, start=start)
    response = serving.post(
        f"/predict/{endpoint}", {"dataframe_split": {"columns": columns, "data": rows}}, token, **headers
    )
    assert response.status_code == 200, response.content
    BUFFER.flush()
    return response.json()


def send(
    serving: Serving, token: str | None, endpoint: str, body: Any, content_type: str = "application/json"
) -> Any:
    """POST /feedback, then write what it queued."""
    response = serving.post(f"/feedback/{endpoint}", body, token, content_type=content_type)
    FEEDBACK_BUFFER.flush()
    return response
