"""``manage.py demo``: the training, registration and configuration step of ``make run``.

Idempotent: trains and registers the demo models only when missing (a scikit-learn champion
and an XGBoost challenger on scikit-learn's breast-cancer data, each with a signature and a
drift reference), mirrors them, creates endpoint ``demo`` at 90/10 and a service token, and
prints a curl line that works as pasted. The raw token is kept in ``var/demo_token`` (mode
0600) so a second run can print it again; production tokens are never stored raw.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry import mlflow_client
from registry.models import ModelVersion
from registry.services import registry_sync
from routing.governance import services
from routing.governance.tokens import service_token_create, service_token_revoke
from routing.models import Endpoint, ServiceToken, hash_token

REPO = Path(__file__).resolve().parents[3]
REASON = "make run: demo set-up"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"demo_{name}", REPO / "mlflow" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Command(BaseCommand):
    help = "Train/register the demo models, create endpoint 'demo' at 90/10 and a service token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", default="demo")
        parser.add_argument("--model", default="demo-model", help="registered model name")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, endpoint: str, model: str, base_url: str, **options: Any) -> None:
        try:
            self._register_models(model)
        except mlflow_client.MlflowUnavailable as exc:
            raise CommandError(str(exc)) from exc
        if not Endpoint.objects.filter(name=endpoint).exists():
            services.endpoint_create(
                actor="system",
                name=endpoint,
                model_name=model,
                champion_version=1,
                reason=REASON,
                gate_metric="val_auc",
            )
            services.challenger_start(
                actor="system", endpoint_name=endpoint, version=2, percent=10, reason=REASON
            )
        token = self._token(endpoint)
        self.stdout.write(
            f"Endpoint '{endpoint}': champion v1 (scikit-learn) 90%, challenger v2 (XGBoost) 10%"
        )
        self.stdout.write(f"Service token (keep it secret): {token}")
        self.stdout.write("Try it:")
        self.stdout.write(self._curl(base_url, endpoint, token, model))

    def _register_models(self, model: str) -> None:
        mlflow_client.client()  # points the mlflow library at MLFLOW_TRACKING_URI
        registry_sync(model_name=model)
        have = ModelVersion.objects.filter(registered_model__name=model, deleted_in_mlflow=False).count()
        if have < 1:
            self.stdout.write("Training the scikit-learn champion…")
            _script("train_sklearn").train_and_register(model)
        if have < 2:
            self.stdout.write("Training the XGBoost challenger…")
            _script("train_xgboost").train_and_register(model)
        registry_sync(model_name=model)

    def _token(self, endpoint: str) -> str:
        """The stored demo token while it is still live; else the old ones revoked and a new one."""
        stored = Path(settings.VAR_DIR) / "demo_token"
        raw = stored.read_text().strip() if stored.exists() else ""
        live = ServiceToken.objects.filter(revoked_at__isnull=True)
        if raw and live.filter(token_hash=hash_token(raw)).exists():
            return raw
        prefix = f"{endpoint}-demo"
        for old in live.filter(name__startswith=prefix):  # their raw value is lost with the file
            service_token_revoke(actor="system", name=old.name, reason=f"{REASON}: raw token lost, replaced")
        taken = set(ServiceToken.objects.filter(name__startswith=prefix).values_list("name", flat=True))
        name = next(n for n in (prefix, *(f"{prefix}-{i}" for i in range(2, 10_000))) if n not in taken)
        _, raw = service_token_create(
            actor="system", name=name, endpoints=[endpoint], can_override=True, reason=REASON
        )
        stored.write_text(raw)
        stored.chmod(0o600)
        return raw

    def _curl(self, base_url: str, endpoint: str, token: str, model: str) -> str:
        version = ModelVersion.objects.get(registered_model__name=model, version=1)
        columns = version.input_columns
        x = _script("train_sklearn").load_data()[1]  # validation rows
        body = {"dataframe_split": {"columns": columns, "data": [x[columns].iloc[0].round(4).tolist()]}}
        return (
            f"curl -s -X POST {base_url}/predict/{endpoint} "
            f"-H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
            f"-H 'X-Unit-Key: customer-42' -d {shlex.quote(json.dumps(body))}"
        )
