"""Classification metrics as pure functions of per-example labels and probabilities.

Computed with scikit-learn and numpy on the gathered arrays of the whole evaluation split, so a
distributed run scores each example exactly once.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from harness.metrics.columns import columns, roc_auc

__all__ = ["classification_metrics", "exercise_metrics", "group_metrics", "roc_auc"]


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray, label_names: list[str]) -> dict:
    """Every column of the catalogue (accuracy, averaged precision/recall/F1, ROC-AUC, MCC...), the per-class
    precision/recall/F1, the per-class ROC-AUC and the confusion matrix.

    Args:
        y_true: integer labels, shape (n,).
        y_prob: class probabilities, shape (n, K); the prediction is the arg-max.
        label_names: the K class names in index order.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    num_labels = len(label_names)
    if y_prob.shape != (len(y_true), num_labels):
        raise ValueError(f"y_prob has shape {y_prob.shape}, expected {(len(y_true), num_labels)}")
    y_pred = y_prob.argmax(axis=1)
    labels = list(range(num_labels))
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    result: dict = {
        "n": len(y_true),
        "per_class": {
            name: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(support[k])}
            for k, name in enumerate(label_names)
        },
    }
    for column in columns():  # every scalar score of the catalogue (harness.metrics.columns)
        value = column.compute(y_true, y_pred, y_prob, num_labels)
        result[column.name] = None if value is None else float(value)
    result.update(roc_auc(y_true, y_prob, num_labels))
    result["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return result


def exercise_metrics(metrics: dict) -> dict:
    """The four headline numbers in the form of the original exercise's ``evaluation_metrics.json``."""
    return {
        "accuracy": metrics["accuracy"],
        "f1": metrics["f1_macro"],
        "precision": metrics["precision_macro"],
        "recall": metrics["recall_macro"],
        "average": "macro",
    }


def group_metrics(y_true: np.ndarray, y_prob: np.ndarray, groups: np.ndarray, label_names: list[str]) -> dict:
    """The same metrics computed separately for each value of a grouping column (language, domain...)."""
    out = {}
    for value in sorted(set(groups.tolist())):
        mask = groups == value
        m = classification_metrics(y_true[mask], y_prob[mask], label_names)
        out[value] = {k: m[k] for k in ("n", "accuracy", "f1_macro", "roc_auc")}
    return out
