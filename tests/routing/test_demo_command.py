from __future__ import annotations

import json
import shlex
from io import StringIO

from django.core.management import call_command

from registry.models import ModelVersion
from routing.models import Endpoint


def _run_demo() -> str:
    out = StringIO()
    call_command("demo", "--model", "demo-cmd-model", stdout=out)
    return out.getvalue()


def test_demo_registers_models_creates_a_90_10_endpoint_and_prints_a_working_curl(serving):
    first = _run_demo()

    endpoint = Endpoint.objects.get(name="demo")
    weights = {v.role: v.weight for v in endpoint.variants.all()}
    assert weights == {"champion": 90, "challenger": 10}
    versions = ModelVersion.objects.filter(registered_model__name="demo-cmd-model")
    assert {v.version: sorted(v.flavors) for v in versions}[2] == ["python_function", "xgboost"]
    assert all(len(v.signature_inputs) == 30 for v in versions)

    second = _run_demo()  # reuses everything: same token, no new versions
    assert versions.count() == 2
    token_line = next(line for line in first.splitlines() if line.startswith("Service token"))
    assert token_line in second

    serving.refresh()  # what the background refresher does within a second
    curl = next(line for line in first.splitlines() if line.startswith("curl "))
    args = shlex.split(curl)
    body = json.loads(args[args.index("-d") + 1])
    headers = dict(a.split(": ", 1) for a in (args[i + 1] for i, x in enumerate(args) if x == "-H"))
    response = serving.client.post(
        "/predict/demo",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=headers["Authorization"],
        HTTP_X_UNIT_KEY=headers["X-Unit-Key"],
    )
    assert response.status_code == 200, response.content
    assert response.json()["predictions"] in ([0], [1])
