"""Python client of the MLOps control plane: an SDK over its HTTP API and an MLflow deployments plugin.

``ControlPlane`` calls /predict, /feedback and batch jobs with a service token and the /api/v1/
control API with a user's token; ``controlplane_client.deployments`` is the plugin behind
``mlflow deployments ... -t controlplane``. It speaks HTTP only and imports nothing of the server.
"""

from __future__ import annotations

from controlplane_client.client import ControlPlane
from controlplane_client.dataplane import FeedbackResult, Job, JobStatus, Prediction
from controlplane_client.errors import ControlPlaneError
from controlplane_client.payloads import ground_truth, outcome

__version__ = "0.1.0"
__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "FeedbackResult",
    "Job",
    "JobStatus",
    "Prediction",
    "ground_truth",
    "outcome",
]
