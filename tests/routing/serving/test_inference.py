"""The native fast path answers exactly what pyfunc answers, on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from routing.serving import inference
from routing.serving.loader import ModelStore, load_version
from routing.serving.payloads import Payload
from routing.serving.validation import Schema, validate
from tests.routing.helpers import breast_rows


def _signature(name: str, version: int):
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(f"models:/{name}/{version}").metadata.get_input_schema().to_dict()


@pytest.mark.parametrize(
    ("model", "kind"), [("sklearn", "sklearn"), ("xgboost", "xgboost")], ids=["sklearn", "xgboost"]
)
def test_the_fast_path_equals_pyfunc_predict_on_the_same_rows(trained_models, model, kind):
    name = getattr(trained_models, f"{model}_name")
    version = getattr(trained_models, f"{model}_version")
    loaded = load_version(name, version, _signature(name, version))
    assert loaded.kind == kind  # the fast path is really taken
    columns, rows = breast_rows(569)
    for size in (1, 7, 100, 569):
        batch = validate(Payload(columns, rows[:size]), loaded.schema)
        fast = inference.predict(loaded, batch)
        reference = loaded.pyfunc.predict(pd.DataFrame(rows[:size], columns=columns))
        assert fast == np.asarray(reference).tolist()
        assert fast == inference.predict_pyfunc(loaded, batch)
    assert len(set(inference.predict(loaded, validate(Payload(columns, rows), loaded.schema)))) == 2


def test_the_pyfunc_path_serves_when_there_is_no_numeric_array(trained_models):
    name, version = trained_models.sklearn_name, trained_models.sklearn_version
    loaded = load_version(name, version, _signature(name, version))
    columns, rows = breast_rows(5)
    batch = validate(Payload(columns, rows), loaded.schema)
    batch.array = None
    assert (
        inference.predict(loaded, batch)
        == loaded.pyfunc.predict(pd.DataFrame(rows, columns=columns)).tolist()
    )


def test_a_version_that_cannot_load_is_remembered_as_a_failure_not_raised(trained_models):
    store = ModelStore()
    store.sync([(trained_models.sklearn_name, 999, None), (trained_models.sklearn_name, 1, None)])
    assert store.get(trained_models.sklearn_name, 999) is None
    assert store.failure(trained_models.sklearn_name, 999)
    assert store.get(trained_models.sklearn_name, 1) is not None
    old = store.get(trained_models.sklearn_name, 1)
    store.sync([])  # dropped from the store, but a request holding it still predicts
    assert store.get(trained_models.sklearn_name, 1) is None
    columns, rows = breast_rows(1)
    assert inference.predict(
        old, validate(Payload(columns, rows), Schema.from_signature(_signature(old.name, 1)))
    )
