"""The data plane as a pure function: route and payload in, an answer out, no HTTP, no database."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from routing.serving import dataplane
from routing.serving.errors import AccessDenied, NoVariantAvailable, PayloadError
from routing.serving.loader import load_version
from routing.serving.payloads import Payload
from routing.serving.table import VariantRoute, make_route
from tests.routing.helpers import breast_rows


@pytest.fixture(scope="module")
def champion_model(trained_models):
    name, version = trained_models.sklearn_name, trained_models.sklearn_version
    signature = mlflow.pyfunc.load_model(f"models:/{name}/{version}").metadata.get_input_schema().to_dict()
    return load_version(name, version, signature)


def _variant(name: str, role: str, weight: int, model=None, schema=None) -> VariantRoute:
    return VariantRoute(
        name=name,
        role=role,
        weight=weight,
        mirror_percent=0,
        model_name=model.name if model else "m",
        model_version=model.version if model else 9,
        schema=model.schema if model else schema,
        model=model,
        load_error="" if model else "MlflowException: no such version",
    )


def test_the_champion_answers_what_pyfunc_answers(champion_model):
    route = make_route("pure", True, [_variant("champ", "champion", 1, champion_model)])
    columns, rows = breast_rows(4)
    answer = dataplane.predict(route, Payload(columns, rows))
    assert answer.variant.name == "champ" and answer.fallback_from == ""
    assert answer.outputs == champion_model.pyfunc.predict(pd.DataFrame(rows, columns=columns)).tolist()
    assert answer.seconds > 0 and answer.batch.columns == columns


def test_a_challenger_that_is_not_loaded_falls_back_to_the_champion_and_is_counted(champion_model):
    challenger = _variant("chal", "challenger", 1, schema=champion_model.schema)
    route = make_route("fallback", True, [_variant("champ", "champion", 1, champion_model), challenger])
    labels = {"endpoint": "fallback", "variant": "chal", "reason": "not_loaded"}
    before = REGISTRY.get_sample_value("controlplane_fallbacks_total", labels) or 0.0
    columns, rows = breast_rows(1)
    answer = dataplane.predict(route, Payload(columns, rows), forced="chal", can_override=True)
    assert answer.variant.name == "champ" and answer.fallback_from == "chal"
    assert REGISTRY.get_sample_value("controlplane_fallbacks_total", labels) - before == 1


def test_a_champion_that_cannot_serve_is_503_not_a_crash(champion_model):
    route = make_route("down", True, [_variant("champ", "champion", 1, schema=champion_model.schema)])
    columns, rows = breast_rows(1)
    with pytest.raises(NoVariantAvailable) as raised:
        dataplane.predict(route, Payload(columns, rows))
    assert raised.value.status == 503 and "not loaded" in raised.value.message


def test_a_paused_endpoint_and_a_forced_variant_are_refused_with_the_right_status(champion_model):
    champ = _variant("champ", "champion", 1, champion_model)
    columns, rows = breast_rows(1)
    with pytest.raises(NoVariantAvailable):
        dataplane.predict(make_route("paused", False, [champ]), Payload(columns, rows))
    route = make_route("forced", True, [champ])
    with pytest.raises(AccessDenied) as denied:
        dataplane.predict(route, Payload(columns, rows), forced="champ", can_override=False)
    assert denied.value.status == 403
    with pytest.raises(PayloadError) as unknown:
        dataplane.predict(route, Payload(columns, rows), forced="nope", can_override=True)
    assert unknown.value.status == 400 and unknown.value.details == {"variants": ["champ"]}
