"""Classification metrics as pure functions of per-example labels and probabilities.

Computed with scikit-learn and numpy on the gathered arrays of the whole evaluation split, so a
distributed run scores each example exactly once.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)


def roc_auc(y_true: np.ndarray, y_prob: np.ndarray, num_labels: int) -> dict:
    """ROC-AUC: the positive class's score for binary tasks, one-vs-rest per class plus macro otherwise.

    A class absent from ``y_true`` (or a single-class split) has no ROC curve: it is reported as
    ``None`` with the reason, never as a crash or a made-up number.
    """
    present = np.unique(y_true)
    if len(present) < 2:
        reason = f"not defined: the evaluation split has a single class ({int(present[0])})"
        return {"roc_auc": None, "roc_auc_per_class": [None] * num_labels, "roc_auc_note": reason}
    if num_labels == 2:
        value = float(roc_auc_score(y_true, y_prob[:, 1]))
        return {"roc_auc": value, "roc_auc_per_class": [value, value], "roc_auc_note": None}
    per_class: list[float | None] = []
    for k in range(num_labels):
        positives = y_true == k
        per_class.append(float(roc_auc_score(positives, y_prob[:, k])) if 0 < positives.sum() < len(y_true) else None)
    defined = [v for v in per_class if v is not None]
    note = None if len(defined) == num_labels else "macro over the classes present in the evaluation split"
    return {"roc_auc": float(np.mean(defined)), "roc_auc_per_class": per_class, "roc_auc_note": note}


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, per-class and averaged precision/recall/F1, ROC-AUC and the confusion matrix.

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
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(support[k])}
            for k, name in enumerate(label_names)
        },
    }
    for average in ("macro", "micro", "weighted"):
        pa, ra, fa, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        result[f"precision_{average}"] = float(pa)
        result[f"recall_{average}"] = float(ra)
        result[f"f1_{average}"] = float(fa)
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
