"""Evaluation metrics for regression and classification, and how to compare them."""

from __future__ import annotations

from typing import Any

import numpy as np

from airflow_mlc.spec import LOWER_IS_BETTER


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
    }


def classification_metrics(y_true: Any, y_pred: Any, y_score: Any | None) -> dict[str, float]:
    """Accuracy, precision, recall and F1 (weighted over classes), and ROC AUC when scores exist."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="weighted", zero_division=0)
    result = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    if y_score is not None and len(np.unique(y_true)) > 1:
        if y_score.shape[1] == 2:
            result["roc_auc"] = float(roc_auc_score(y_true, y_score[:, 1]))
        else:
            result["roc_auc"] = float(roc_auc_score(y_true, y_score, multi_class="ovr", average="weighted"))
    return result


def score_model(model: Any, frame: Any, features: list[str], target: str, task: str) -> dict[str, float]:
    """Score a fitted scikit-learn model on ``frame``."""
    x, y = frame[features], frame[target]
    predictions = model.predict(x)
    if task == "regression":
        return regression_metrics(y, predictions)
    scores = model.predict_proba(x) if hasattr(model, "predict_proba") else None
    return classification_metrics(y, predictions, scores)


def improves(candidate: float, champion: float, metric: str, min_improvement: float) -> bool:
    """Whether ``candidate`` beats ``champion`` by the relative margin ``min_improvement``."""
    margin = abs(champion) * min_improvement
    if metric in LOWER_IS_BETTER:
        return candidate <= champion - margin and candidate < champion
    return candidate >= champion + margin and candidate > champion
