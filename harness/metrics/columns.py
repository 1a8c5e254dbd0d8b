"""The catalogue of metric columns: every scalar score of a run, declared once.

Each :class:`MetricColumn` says how the score is computed from a run's per-example labels and probabilities,
how it is printed and where it appears. Everything else reads this list: ``metrics.quality`` computes each
column, the result schema (``store.results.Metrics``) gets one field per column, and the CSV/JSON records,
the leaderboard's main table (with its bootstrap interval), a suite's summary, the experiment trackers and the
model card show the columns that ask for it. Adding a metric is one entry here::

    MetricColumn("mcc", "MCC", sklearn_metric(matthews_corrcoef), "Matthews correlation coefficient", ...)

A column added after results were written is optional in the schema (``required=False``, the default), so
those results still read; the leaderboard computes it from their stored predictions, with the same function.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from harness.metrics import stats

# compute(y_true (n,), y_pred (n,), y_prob (n, K), num_labels) -> the score, or None where it is not defined.
Compute = Callable[[np.ndarray, np.ndarray, np.ndarray, int], "float | None"]


@dataclass(frozen=True)
class HubMetric:
    """How a column appears in a model card's ``model-index`` (the hub's metric type, name and arguments)."""

    type: str
    name: str
    args: dict | None = None


@dataclass(frozen=True)
class MetricColumn:
    """One scalar metric of a run.

    Attributes:
        name: the field of ``result.json``'s ``metrics``, the key of the CSV/JSON records and of the trackers.
        label: the column's header in tables (leaderboard, suite summary) and its name in a model card's text.
        compute: ``compute(y_true, y_pred, y_prob, num_labels)``; ``y_pred`` is the arg-max of ``y_prob``.
        description: one line for the result schema.
        higher_is_better: the direction of a better score.
        digits: decimals printed.
        interval: a vectorised metric of ``harness.metrics.stats`` (``metric(y_true, y_prob)`` with a
            ``weighted`` form): the leaderboard prints its bootstrap interval beside the seed mean. None: no
            interval.
        required: stored by every result of this schema since it was written. A column added later stays
            ``False`` so results written before it still read (the field is then absent, read as None).
        nullable: the score may be undefined on a split (ROC-AUC with a single class): stored as null.
        table: a headline column: in the leaderboard's main table, sent to the trackers.
        export: in the CSV/JSON records (``leaderboard.csv``, ``leaderboard.json``, ``Leaderboard.to_pandas``).
        suite: its mean over benchmarks is a column of a suite's summary.
        hub: how a model card's metadata lists it; None: not on the card.
    """

    name: str
    label: str
    compute: Compute
    description: str
    higher_is_better: bool = True
    digits: int = 4
    interval: Callable | None = None
    required: bool = False
    nullable: bool = False
    table: bool = True
    export: bool = True
    suite: bool = False
    hub: HubMetric | None = None

    def score(self, y_true, y_prob) -> float | None:
        """The column on one run's labels and probabilities (the prediction is the arg-max)."""
        y_true = np.asarray(y_true, dtype=np.int64)
        y_prob = np.asarray(y_prob, dtype=np.float64)
        value = self.compute(y_true, y_prob.argmax(axis=1), y_prob, y_prob.shape[1])
        return None if value is None else float(value)


# ----- how the columns are computed -------------------------------------------------------------------------


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


def sklearn_metric(function: Callable) -> Compute:
    """A scikit-learn score of (y_true, y_pred); its warnings about classes a split lacks are not the run's."""

    def compute(y_true, y_pred, y_prob, num_labels):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return function(y_true, y_pred)

    return compute


def _prf(index: int, average: str) -> Compute:
    """Precision (0), recall (1) or F1 (2) averaged over the classes: a macro average over those present in the
    evaluation split (a class with no row there has no recall, and its zero would only lower the mean), as
    ``stats.macro_f1``; micro and weighted over all K (a class without rows weighs nothing in them)."""

    def compute(y_true, y_pred, y_prob, num_labels):
        labels = np.unique(y_true).tolist() if average == "macro" else list(range(num_labels))
        scores = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0)
        return scores[index]

    return compute


def _roc_auc(y_true, y_pred, y_prob, num_labels):
    return roc_auc(y_true, y_prob, num_labels)["roc_auc"]


# Vectorised forms on stacks of weighted confusion matrices (B, K, K), rows = true class: the bootstrap intervals.


def _mcc_counts(confusion: np.ndarray) -> np.ndarray:
    # Gorodkin's K-class MCC as scikit-learn computes it, 0 where either marginal has a single class.
    true, pred = confusion.sum(axis=2), confusion.sum(axis=1)
    total, correct = true.sum(axis=1), np.trace(confusion, axis1=1, axis2=2)
    cov_true_pred = correct * total - (true * pred).sum(axis=1)
    cov_pred = total**2 - (pred * pred).sum(axis=1)
    cov_true = total**2 - (true * true).sum(axis=1)
    denom = cov_pred * cov_true
    defined = denom > 0
    root = np.sqrt(denom, where=defined, out=np.ones_like(denom))
    return np.divide(cov_true_pred, root, out=np.zeros_like(denom), where=defined)


def _balanced_accuracy_counts(confusion: np.ndarray) -> np.ndarray:
    # Mean recall over the classes present in the (re)sample, as scikit-learn's balanced_accuracy_score.
    true = confusion.sum(axis=2)
    hits = np.diagonal(confusion, axis1=1, axis2=2)
    present = true > 0
    recall = np.divide(hits, true, out=np.zeros_like(hits), where=present)
    return recall.sum(axis=1) / present.sum(axis=1)


def _f1_weighted_counts(confusion: np.ndarray) -> np.ndarray:
    # Per-class F1 weighted by the class's support, as scikit-learn's average="weighted" (0 for an empty class).
    true, pred = confusion.sum(axis=2), confusion.sum(axis=1)
    hits = np.diagonal(confusion, axis1=1, axis2=2)
    denom = true + pred
    f1 = np.divide(2 * hits, denom, out=np.zeros_like(hits), where=denom > 0)
    return (f1 * true).sum(axis=1) / true.sum(axis=1)


# ----- the catalogue ----------------------------------------------------------------------------------------

COLUMNS: tuple[MetricColumn, ...] = (
    MetricColumn(
        "accuracy", "accuracy", sklearn_metric(accuracy_score), "fraction of examples whose arg-max is the true label",
        interval=stats.accuracy, required=True, hub=HubMetric("accuracy", "Accuracy"),
    ),
    MetricColumn(
        "f1_macro", "macro-F1", _prf(2, "macro"), "unweighted mean of the per-class F1 over the classes present in the evaluation split",
        interval=stats.macro_f1, required=True, suite=True, hub=HubMetric("f1", "Macro F1", {"average": "macro"}),
    ),
    MetricColumn("precision_macro", "macro precision", _prf(0, "macro"), "unweighted mean of the per-class precision over the classes present in the evaluation split",
                 required=True, table=False),
    MetricColumn("recall_macro", "macro recall", _prf(1, "macro"), "unweighted mean of the per-class recall over the classes present in the evaluation split",
                 required=True, table=False),
    MetricColumn("f1_micro", "micro-F1", _prf(2, "micro"), "F1 of the pooled counts (equals accuracy)",
                 required=True, table=False),
    MetricColumn("f1_weighted", "weighted F1", _prf(2, "weighted"), "per-class F1 weighted by support",
                 interval=stats.confusion_metric(_f1_weighted_counts), required=True, table=False),
    MetricColumn(
        "roc_auc", "ROC-AUC", _roc_auc,
        "the positive class's ROC-AUC when binary, else one-vs-rest macro over the classes present; "
        "null with a single class (see roc_auc_note)",
        interval=stats.roc_auc, required=True, nullable=True, hub=HubMetric("roc_auc", "ROC-AUC"),
    ),
    MetricColumn("precision_micro", "micro precision", _prf(0, "micro"), "precision of the pooled counts",
                 required=True, table=False, export=False),
    MetricColumn("recall_micro", "micro recall", _prf(1, "micro"), "recall of the pooled counts",
                 required=True, table=False, export=False),
    MetricColumn("precision_weighted", "weighted precision", _prf(0, "weighted"),
                 "per-class precision weighted by support", required=True, table=False, export=False),
    MetricColumn("recall_weighted", "weighted recall", _prf(1, "weighted"), "per-class recall weighted by support",
                 required=True, table=False, export=False),
    MetricColumn(
        "mcc", "MCC", sklearn_metric(matthews_corrcoef),
        "Matthews correlation coefficient (K-class, Gorodkin's R_K): -1 to 1, 0 for chance or a constant prediction",
        interval=stats.confusion_metric(_mcc_counts), suite=True, hub=HubMetric("matthews_correlation", "MCC"),
    ),
    MetricColumn(
        "balanced_accuracy", "balanced accuracy", sklearn_metric(balanced_accuracy_score),
        "mean recall over the classes present in the evaluation split",
        interval=stats.confusion_metric(_balanced_accuracy_counts), suite=True,
        hub=HubMetric("balanced_accuracy", "Balanced accuracy"),
    ),
)


def columns(view: str | None = None) -> list[MetricColumn]:
    """The catalogue's columns, in order; with ``view`` ("table", "export", "suite", "hub"), those it shows."""
    if view is None:
        return list(COLUMNS)
    if view not in ("table", "export", "suite", "hub"):
        raise ValueError(f"unknown view {view!r}")
    return [c for c in COLUMNS if getattr(c, view)]


def column(name: str) -> MetricColumn:
    """The catalogue's column called ``name``; a ValueError listing the names when there is none."""
    for candidate in COLUMNS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"no metric column {name!r}; use one of {[c.name for c in COLUMNS]}")
