"""Quality of served predictions against the truth that came back: pure, Django-free.

A classifier's ground truth comes as ``label``, a regressor's as ``value``. A logged prediction is
either the answer itself (a class or a number) or, when the model answers class probabilities,
a list of them (or ``{"probabilities": [...]}``); then the predicted class is the most probable
one, and log loss and AUC (binary) come from scikit-learn. Per-item values are what an
experiment's primary metric averages: ``accuracy`` (0/1 per row, higher is better),
``absolute_error`` and ``squared_error`` (lower is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

GROUND_TRUTH_METRICS = ("accuracy", "absolute_error", "squared_error")
# Kind and direction of each ground-truth primary metric (experiments.services reads these).
GROUND_TRUTH_KIND = {"accuracy": "binary", "absolute_error": "continuous", "squared_error": "continuous"}
GROUND_TRUTH_DIRECTION = {
    "accuracy": "higher_is_better",
    "absolute_error": "lower_is_better",
    "squared_error": "lower_is_better",
}
OUTCOME_PREFIX = "outcome:"


def probabilities(prediction: Any) -> list[float] | None:
    """Class probabilities when the prediction holds them, else None."""
    if isinstance(prediction, dict):
        prediction = prediction.get("probabilities")
    if (
        isinstance(prediction, list)
        and len(prediction) >= 2
        and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in prediction)
        and abs(sum(prediction) - 1.0) < 1e-3
    ):
        return [float(p) for p in prediction]
    return None


def predicted_class(prediction: Any) -> Any:
    """The class a prediction names: itself, its ``label``, or the most probable class index."""
    probs = probabilities(prediction)
    if probs is not None:
        return max(range(len(probs)), key=probs.__getitem__)
    if isinstance(prediction, dict):
        return prediction.get("label", prediction.get("prediction"))
    if isinstance(prediction, list) and len(prediction) == 1:
        return prediction[0]
    return prediction


def predicted_number(prediction: Any) -> float | None:
    """A regressor's answer as a float (None when it is not a number)."""
    value = predicted_class(prediction) if not isinstance(prediction, (int, float)) else prediction
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def same_class(predicted: Any, label: Any) -> bool:
    """Class equality across JSON's number forms (1 == 1.0) but not across types (1 != "1")."""
    if isinstance(predicted, bool) or isinstance(label, bool):
        return predicted == label and type(predicted) is type(label)
    if isinstance(predicted, (int, float)) and isinstance(label, (int, float)):
        return float(predicted) == float(label)
    return predicted == label


def label_problem(prediction: Any, label: Any) -> str:
    """Why ``label`` cannot be the truth for ``prediction`` ('' when it can)."""
    if isinstance(label, (dict, list)) or label is None:
        return "label must be a class: a string, an integer or a boolean"
    if isinstance(label, float) and not label.is_integer():
        return f"label {label!r} is not a class (send a regressor's truth as 'value')"
    if probabilities(prediction) is not None:
        n = len(probabilities(prediction) or [])
        if isinstance(label, bool) or not isinstance(label, (int, float)) or not 0 <= label < n:
            return f"the model answered {n} class probabilities: the label must be a class index 0..{n - 1}"
        return ""
    predicted = predicted_class(prediction)
    numeric = (int, float)
    if isinstance(predicted, bool) != isinstance(label, bool) or (
        isinstance(predicted, numeric) != isinstance(label, numeric)
    ):
        return f"label {label!r} is a {type(label).__name__}, the model answers {type(predicted).__name__} classes"
    return ""


def value_problem(prediction: Any, value: Any) -> str:
    """Why ``value`` cannot be the truth for a regressor's ``prediction`` ('' when it can)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "value must be a finite number"
    if predicted_number(prediction) is None:
        return "the model's answer for this row is not a number: send the truth as 'label'"
    return ""


@dataclass(frozen=True)
class ItemScore:
    """One ground-truth item scored against its prediction."""

    correct: float | None = None  # classification: 1.0 or 0.0
    log_loss: float | None = None  # classification with probabilities
    positive_score: float | None = None  # binary with probabilities: P(class 1), for AUC
    label01: int | None = None
    absolute_error: float | None = None  # regression
    squared_error: float | None = None

    def value_of(self, metric: str) -> float | None:
        """The per-item value of a ground-truth primary metric."""
        return {
            "accuracy": self.correct,
            "absolute_error": self.absolute_error,
            "squared_error": self.squared_error,
        }[metric]


def score(prediction: Any, label: Any, value: float | None) -> ItemScore:
    """Score one item: a label against a class (and its probabilities), or a value against a number."""
    if value is not None and label is None:
        guess = predicted_number(prediction)
        if guess is None:
            return ItemScore()
        return ItemScore(absolute_error=abs(guess - value), squared_error=(guess - value) ** 2)
    correct = 1.0 if same_class(predicted_class(prediction), label) else 0.0
    probs = probabilities(prediction)
    if probs is None or isinstance(label, bool) or not isinstance(label, (int, float)):
        return ItemScore(correct=correct)
    index = int(label)
    loss = -math.log(min(max(probs[index], 1e-15), 1.0))
    binary = len(probs) == 2
    return ItemScore(
        correct=correct,
        log_loss=loss,
        positive_score=probs[1] if binary else None,
        label01=index if binary else None,
    )


def aggregate(scores: Sequence[ItemScore]) -> dict[str, tuple[float | None, int]]:
    """Metric -> (value, items it is computed from) for one variant's scored items."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, tuple[float | None, int]] = {}
    correct = [s.correct for s in scores if s.correct is not None]
    if correct:
        out["accuracy"] = (sum(correct) / len(correct), len(correct))
    losses = [s.log_loss for s in scores if s.log_loss is not None]
    if losses:
        out["log_loss"] = (sum(losses) / len(losses), len(losses))
    pairs = [(s.label01, s.positive_score) for s in scores if s.positive_score is not None]
    if pairs and len({y for y, _ in pairs}) == 2:
        out["auc"] = (float(roc_auc_score([y for y, _ in pairs], [p for _, p in pairs])), len(pairs))
    errors = [s for s in scores if s.absolute_error is not None]
    if errors:
        n = len(errors)
        out["mae"] = (sum(s.absolute_error or 0.0 for s in errors) / n, n)
        out["rmse"] = (math.sqrt(sum(s.squared_error or 0.0 for s in errors) / n), n)
    return out
