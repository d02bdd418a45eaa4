"""routing's tables, in two files that mirror the app's two halves.

``governance`` holds what people change (endpoints, variants, promotion requests) and the one
rule for traffic shares; ``serving`` holds what /predict uses (service tokens, the prediction
log, the routing generation, the workers' status); ``outbox`` the MLflow alias pushes waiting
to be applied (``AliasPush``); ``batch`` the batch scoring jobs (``BatchJob``). Django finds every model of the app through this package, so each is imported by name.
"""

from __future__ import annotations

from routing.models.batch import BatchJob
from routing.models.governance import Endpoint, PromotionRequest, Variant, traffic_shares
from routing.models.outbox import AliasPush
from routing.models.serving import PredictionLog, RoutingGeneration, ServiceToken, WorkerStatus, hash_token

__all__ = [
    "AliasPush",
    "BatchJob",
    "Endpoint",
    "PredictionLog",
    "PromotionRequest",
    "RoutingGeneration",
    "ServiceToken",
    "Variant",
    "WorkerStatus",
    "hash_token",
    "traffic_shares",
]
