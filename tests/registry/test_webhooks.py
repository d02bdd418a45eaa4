from __future__ import annotations

import json
import time
import uuid

import pytest
from django.conf import settings

from registry.models import ModelVersion, RegisteredModel
from registry.services import registry_sync
from registry.webhooks import signature_for
from tests.conftest import clone_version

URL = "/hooks/mlflow"


def _post(client, body: dict | bytes, *, secret: str | None = None, age: int = 0, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    delivery, timestamp = str(uuid.uuid4()), str(int(time.time()) - age)
    signature = signature_for(secret or settings.MLFLOW_WEBHOOK_SECRET, delivery, timestamp, raw)
    sent = {
        "HTTP_X_MLFLOW_SIGNATURE": signature,
        "HTTP_X_MLFLOW_TIMESTAMP": timestamp,
        "HTTP_X_MLFLOW_DELIVERY_ID": delivery,
    }
    sent.update(headers)
    return client.post(URL, raw, content_type="application/json", **{k: v for k, v in sent.items() if v})


def _payload(name: str) -> dict:
    return {"entity": "model_version", "action": "created", "timestamp": "", "data": {"name": name}}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("secret", "age", "headers", "status", "code"),
    [
        ("wrong-secret", 0, {}, 401, "bad_signature"),
        (None, 3600, {}, 401, "stale_delivery"),
        (None, -3600, {}, 401, "stale_delivery"),
        (None, 0, {"HTTP_X_MLFLOW_SIGNATURE": ""}, 401, "missing_signature"),
        (None, 0, {"HTTP_X_MLFLOW_TIMESTAMP": ""}, 401, "missing_signature"),
        (None, 0, {"HTTP_X_MLFLOW_TIMESTAMP": "yesterday"}, 400, "bad_timestamp"),
    ],
)
def test_it_refuses_unsigned_forged_and_stale_deliveries(client, secret, age, headers, status, code):
    response = _post(client, _payload("anything"), secret=secret, age=age, **headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not RegisteredModel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"data": {}}', b'{"entity":"x","action":"y","data":{"name":7}}']
)
def test_it_answers_400_to_a_signed_payload_it_cannot_use(client, body):
    response = _post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_payload"


# A verified delivery answers 202 and a worker syncs the model: tests/tasks/test_webhook_sync.py
# (real workers on Redis); a broker that is down: tests/tasks/test_task_metrics.py.


@pytest.mark.django_db
def test_polling_still_catches_what_no_webhook_delivered(trained_models, mlflow_server):
    # MLflow keeps no outbox: a delivery lost in a restart is caught by the next sync_registry.
    client = mlflow_server.client()
    name = f"missed-{uuid.uuid4().hex[:6]}"
    src = client.get_model_version(trained_models.sklearn_name, str(trained_models.sklearn_version))
    client.create_registered_model(name)
    clone_version(client, name, src)
    registry_sync()
    assert ModelVersion.objects.filter(registered_model__name=name).exists()


def test_register_mlflow_webhook_is_idempotent(mlflow_server):
    from django.core.management import call_command

    for _ in range(2):
        call_command(
            "register_mlflow_webhook", "--url", "http://127.0.0.1:8000/hooks/mlflow", "--name", "cp-test"
        )
    hooks = [h for h in mlflow_server.client().list_webhooks() if h.name == "cp-test"]
    assert len(hooks) == 1
    assert hooks[0].url == "http://127.0.0.1:8000/hooks/mlflow"
    mlflow_server.client().delete_webhook(hooks[0].webhook_id)
