"""A model whose every prediction fails (MLflow "models from code"): the bad challenger of the
end-to-end rollout test, registered with the real data set's signature so it loads and validates."""

from __future__ import annotations

from mlflow.pyfunc import PythonModel

import mlflow


class AlwaysFails(PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("injected failure: this challenger cannot predict")


mlflow.models.set_model(AlwaysFails())
