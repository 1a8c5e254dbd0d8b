"""Uncertainty and calibration for per-example predictions: bootstrap intervals, paired tests, ECE, Brier.

numpy (with scipy's exact binomial test and scikit-learn's Brier score). Every metric here is written once as a *weighted* function: a bootstrap resample is a
vector of counts (how often each example was drawn), so 1000 resamples become one (1000, n) count
matrix and a few matrix products instead of 1000 Python-level metric calls. The unweighted metric is
the same function with every count equal to one, so point estimates and resamples can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Rows of the count matrix built at once; bounds memory at about CHUNK * n * 8 bytes.
_CHUNK = 250


def _as_arrays(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2 or y_prob.shape[0] != y_true.shape[0]:
        raise ValueError(f"y_prob must have shape (n, K) with n={len(y_true)}, got {y_prob.shape}")
    return y_true, y_prob


# --------------------------------------------------------------------------------------------------
# Weighted metrics: (y_true (n,), y_prob (n, K), weights (B, n)) -> (B,)
# --------------------------------------------------------------------------------------------------


def _accuracy_weighted(y_true: np.ndarray, y_prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
    correct = (y_prob.argmax(axis=1) == y_true).astype(weights.dtype)
    return weights @ correct / weights.sum(axis=1)


def _macro_f1_weighted(y_true: np.ndarray, y_prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
    # Macro over the classes present in the evaluation split (y_true as a whole, not each resample, so a rare
    # class a resample misses counts as the 0 it scores there), zero where a class has no prediction (sklearn's
    # zero_division=0 with labels=the classes of y_true), so the point estimate equals metrics.columns' f1_macro.
    num_labels = y_prob.shape[1]
    y_pred = y_prob.argmax(axis=1)
    classes = np.arange(num_labels)
    is_true = (y_true[:, None] == classes).astype(weights.dtype)
    is_pred = (y_pred[:, None] == classes).astype(weights.dtype)
    tp = weights @ (is_true * is_pred)
    true_count = weights @ is_true
    pred_count = weights @ is_pred
    denom = true_count + pred_count
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = np.isin(classes, y_true)
    return f1[:, present].mean(axis=1)


def _binary_auc_weighted(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC with example weights; ties count one half; nan where one side has no weight."""
    order = np.argsort(score, kind="mergesort")
    score_sorted = score[order]
    pos_sorted = positive[order]
    w = weights[:, order]
    # Group tied scores so each group contributes half of its own negatives.
    starts = np.flatnonzero(np.r_[True, score_sorted[1:] != score_sorted[:-1]])
    w_pos = np.add.reduceat(w * pos_sorted, starts, axis=1)
    w_neg = np.add.reduceat(w * (~pos_sorted), starts, axis=1)
    neg_below = np.cumsum(w_neg, axis=1) - w_neg
    numerator = (w_pos * (neg_below + 0.5 * w_neg)).sum(axis=1)
    total_pos = w_pos.sum(axis=1)
    total_neg = w_neg.sum(axis=1)
    denom = total_pos * total_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, numerator / np.where(denom > 0, denom, 1.0), np.nan)


def _roc_auc_weighted(y_true: np.ndarray, y_prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
    num_labels = y_prob.shape[1]
    if num_labels == 2:
        return _binary_auc_weighted(y_true == 1, y_prob[:, 1], weights)
    # One-vs-rest, macro over the classes defined in this (re)sample, as metrics.roc_auc does; nan
    # when fewer than two classes are present, since then no class has a ROC curve.
    per_class = np.stack(
        [_binary_auc_weighted(y_true == k, y_prob[:, k], weights) for k in range(num_labels)], axis=1
    )
    present = (weights @ (y_true[:, None] == np.arange(num_labels)).astype(weights.dtype)) > 0
    defined = np.isfinite(per_class)
    counts = defined.sum(axis=1)
    sums = np.where(defined, per_class, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        macro = sums / counts
    return np.where(present.sum(axis=1) >= 2, macro, np.nan)


def _unweighted(weighted: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(y_true, y_prob) -> float:
        y_true, y_prob = _as_arrays(y_true, y_prob)
        return float(weighted(y_true, y_prob, np.ones((1, len(y_true))))[0])

    metric.weighted = weighted  # type: ignore[attr-defined]
    metric.__name__ = weighted.__name__.strip("_").removesuffix("_weighted")
    return metric


accuracy = _unweighted(_accuracy_weighted)
accuracy.__doc__ = "Fraction of examples whose arg-max probability is the true label."
macro_f1 = _unweighted(_macro_f1_weighted)
macro_f1.__doc__ = (
    "Unweighted mean of the per-class F1 over the classes present in y_true (the evaluation split); a class "
    "absent there is left out, as metrics.columns' f1_macro leaves it out."
)
roc_auc = _unweighted(_roc_auc_weighted)
roc_auc.__doc__ = (
    "ROC-AUC: the positive class's score when K=2, else one-vs-rest macro over classes present; "
    "nan when the labels hold a single class."
)


def confusion_metric(from_counts: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], float]:
    """A vectorised metric from a function of weighted confusion matrices.

    ``from_counts`` maps a stack of confusion matrices (B, K, K), rows the true class and columns the arg-max,
    to B scores; every metric of the predicted labels alone (MCC, balanced accuracy) is one. The result is a
    metric like :data:`accuracy`: ``metric(y_true, y_prob)``, bootstrapped by :func:`bootstrap_cis` and the
    seed-mean intervals at the cost of one matrix product per chunk of resamples.
    """

    def weighted(y_true: np.ndarray, y_prob: np.ndarray, weights: np.ndarray) -> np.ndarray:
        num_labels = y_prob.shape[1]
        cell = y_true * num_labels + y_prob.argmax(axis=1)
        one_hot = (cell[:, None] == np.arange(num_labels * num_labels)).astype(weights.dtype)
        counts = (weights @ one_hot).astype(np.float64)  # float32 counts are exact; the formula is float64
        return from_counts(counts.reshape(len(weights), num_labels, num_labels))

    weighted.__name__ = f"_{from_counts.__name__.strip('_').removesuffix('_counts')}_weighted"
    return _unweighted(weighted)



# --------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------


def _resample_values(
    metrics: list[Callable], y_true, probs: list[np.ndarray], n_boot: int, seed: int
) -> list[np.ndarray]:
    """Each metric on each of ``n_boot`` resamples (the same resamples for every probs array)."""
    n = len(y_true)
    rng = np.random.default_rng(seed)
    out = [np.empty(n_boot) for _ in metrics]
    for start in range(0, n_boot, _CHUNK):
        rows = min(_CHUNK, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n), dtype=np.int64)
        counts = np.bincount((idx + (np.arange(rows) * n)[:, None]).ravel(), minlength=rows * n)
        counts = counts.reshape(rows, n).astype(
            np.float32
        )  # small whole numbers: exact, half the memory traffic
        for j, (metric, prob) in enumerate(zip(metrics, probs, strict=True)):
            weighted = getattr(metric, "weighted", None)
            if weighted is not None:
                out[j][start : start + rows] = weighted(y_true, prob, counts)
            else:  # a caller's own metric: correct but one call per resample
                out[j][start : start + rows] = [metric(y_true[i], prob[i]) for i in idx]
    return out


def bootstrap_ci(
    y_true, y_prob, metric: Callable, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict:
    """Percentile bootstrap confidence interval of a metric over examples.

    Args:
        y_true: integer labels, shape (n,).
        y_prob: class probabilities, shape (n, K).
        metric: ``metric(y_true, y_prob) -> float``; the metrics of this module are vectorised.
        n_boot: number of resamples.
        alpha: 1 - confidence level (0.05 gives a 95% interval).
        seed: seed of the resampling, so a report is reproducible.

    Returns:
        ``{"point", "low", "high", "n_boot"}``; ``n_boot`` counts the resamples where the metric was
        defined (resamples giving nan, e.g. ROC-AUC on a single-class resample, are skipped).
        ``low``/``high`` are nan when no resample was defined.
    """
    return bootstrap_cis(y_true, y_prob, {"metric": metric}, n_boot, alpha, seed)["metric"]


def bootstrap_cis(
    y_true, y_prob, metrics: dict[str, Callable], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict[str, dict]:
    """:func:`bootstrap_ci` of several metrics on one shared set of resamples (cheaper than one call each).

    Returns:
        name -> ``{"point", "low", "high", "n_boot"}``.
    """
    y_true, y_prob = _as_arrays(y_true, y_prob)
    functions = list(metrics.values())
    resampled = _resample_values(functions, y_true, [y_prob] * len(functions), n_boot, seed)
    out = {}
    for (name, metric), values in zip(metrics.items(), resampled, strict=True):
        point = float(metric(y_true, y_prob))
        values = values[np.isfinite(values)]
        if len(values) == 0:
            out[name] = {"point": point, "low": math.nan, "high": math.nan, "n_boot": 0}
            continue
        low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        out[name] = {"point": point, "low": float(low), "high": float(high), "n_boot": int(len(values))}
    return out


def paired_bootstrap(
    y_true, prob_a, prob_b, metric: Callable, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """Paired bootstrap of ``metric(a) - metric(b)`` on the same examples.

    Both models are scored on the same resamples, so the per-example correlation between them
    cancels and a small but consistent difference is detected. The p-value is two-sided, against the
    null shifted to a zero difference: ``(1 + #{|d* - d| >= |d|}) / (1 + B)``.

    Returns:
        ``{"diff", "low", "high", "p_value", "n_boot"}`` with ``diff = metric(a) - metric(b)`` and its
        ``1 - alpha`` percentile interval.
    """
    y_true, prob_a = _as_arrays(y_true, prob_a)
    _, prob_b = _as_arrays(y_true, prob_b)
    # One seed each: the mean over seeds is the seed's own score, on the same resamples.
    out = paired_seed_mean_bootstrap(y_true, [prob_a], [prob_b], metric, n_boot, seed, alpha)
    out.pop("p_floor")
    return out


def seed_mean_bootstrap_cis(
    y_true, probs_by_seed: list, metrics: dict[str, Callable], n_boot: int = 10_000, alpha: float = 0.05, seed: int = 0
) -> dict[str, dict]:
    """Intervals of a metric's mean over seeds, resampling test examples (the same examples for every seed).

    The seeds' predictions are kept together on every resample, so the interval is that of the number the
    leaderboard prints (the mean over seeds) over the test examples; with one seed it is :func:`bootstrap_cis`.
    Seed-to-seed spread is reported beside it as a standard deviation, not folded in.

    Returns:
        name -> ``{"point", "low", "high", "n_boot", "seeds", "per_seed"}``; ``per_seed`` holds each seed's own
        ``{"point", "low", "high"}`` from the same resamples (what the exports give per seed).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = [np.asarray(p, dtype=np.float64) for p in probs_by_seed]
    names = list(metrics)
    functions = [metrics[name] for name in names for _ in probs]
    resampled = _resample_values(functions, y_true, [p for _ in names for p in probs], n_boot, seed)
    out = {}
    for i, name in enumerate(names):
        per_seed = resampled[i * len(probs) : (i + 1) * len(probs)]
        points = [float(metrics[name](y_true, p)) for p in probs]
        seeds = [{"point": pt, **_percentile_bounds(v, alpha)} for pt, v in zip(points, per_seed, strict=True)]
        values = np.mean(per_seed, axis=0)
        point = float(np.mean(points))
        bounds = _percentile_bounds(values, alpha)
        n_defined = int(np.isfinite(values).sum())
        out[name] = {"point": point, **bounds, "n_boot": n_defined, "seeds": len(probs), "per_seed": seeds}
    return out


def _percentile_bounds(values: np.ndarray, alpha: float) -> dict:
    """``{"low", "high"}``: the percentile interval of the finite resampled values (nan when there are none)."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"low": math.nan, "high": math.nan}
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return {"low": float(low), "high": float(high)}


def paired_seed_mean_bootstrap(
    y_true, probs_a: list, probs_b: list, metric: Callable, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """:func:`paired_bootstrap` of the difference between two models' means over their seeds.

    Every seed of both models is scored on the same resamples of the test examples, so the comparison uses
    all seeds rather than the first one. The p-value's floor is ``1 / (1 + n_boot)``; callers print it as a
    bound, not as a finding.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    a = [np.asarray(p, dtype=np.float64) for p in probs_a]
    b = [np.asarray(p, dtype=np.float64) for p in probs_b]
    diff = float(np.mean([metric(y_true, p) for p in a]) - np.mean([metric(y_true, p) for p in b]))
    values = _resample_values([metric] * (len(a) + len(b)), y_true, a + b, n_boot, seed)
    d = np.mean(values[: len(a)], axis=0) - np.mean(values[len(a) :], axis=0)
    d = d[np.isfinite(d)]
    if len(d) == 0 or not math.isfinite(diff):
        return {"diff": diff, "low": math.nan, "high": math.nan, "p_value": math.nan, "n_boot": 0, "p_floor": math.nan}
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    # A tolerance keeps float noise from turning an exact tie (d == diff == 0) into p < 1.
    extreme = np.abs(d - diff) >= abs(diff) - 1e-12
    p_value = (1 + int(extreme.sum())) / (1 + len(d))
    return {
        "diff": diff,
        "low": float(low),
        "high": float(high),
        "p_value": float(min(1.0, p_value)),
        "n_boot": int(len(d)),
        "p_floor": 1.0 / (1 + len(d)),
    }


def _binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of ``min(b, c) = k`` out of ``n`` discordant pairs, p = 1/2
    (``scipy.stats.binomtest``)."""
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(min(k, n - k), n, 0.5, alternative="two-sided").pvalue))


def mcnemar(y_true, pred_a, pred_b, exact_below: int = 25) -> dict:
    """McNemar's test of two classifiers' error rates on the same examples.

    Args:
        y_true: integer labels, shape (n,).
        pred_a: model A's predicted labels (or probabilities, shape (n, K), reduced by arg-max).
        pred_b: the same for model B.
        exact_below: below this many discordant pairs the exact binomial test is used; above it the
            chi-squared statistic with continuity correction.

    Returns:
        ``{"b", "c", "statistic", "p_value", "method"}``: ``b`` = A right and B wrong, ``c`` = A wrong
        and B right; ``statistic`` is ``min(b, c)`` for the exact test, else the chi-squared value.
    """
    y_true = np.asarray(y_true)
    pred_a, pred_b = np.asarray(pred_a), np.asarray(pred_b)
    if pred_a.ndim == 2:
        pred_a = pred_a.argmax(axis=1)
    if pred_b.ndim == 2:
        pred_b = pred_b.argmax(axis=1)
    right_a, right_b = pred_a == y_true, pred_b == y_true
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c < exact_below:
        return {
            "b": b,
            "c": c,
            "statistic": float(min(b, c)),
            "p_value": _binom_two_sided(min(b, c), b + c),
            "method": "exact",
        }
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    p_value = math.erfc(math.sqrt(statistic / 2))  # chi-squared survival function with one degree of freedom
    return {"b": b, "c": c, "statistic": float(statistic), "p_value": float(p_value), "method": "chi2"}


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------


def reliability_bins(y_true, y_prob, n_bins: int = 15) -> dict:
    """Top-label confidence against accuracy in equal-width bins, for a reliability diagram.

    Bin ``i`` holds confidences in ``(i/n_bins, (i+1)/n_bins]`` (the first bin also holds 0).

    Returns:
        ``{"edges" (n_bins+1,), "count", "confidence", "accuracy"}``; the last two are nan in empty bins.
    """
    y_true, y_prob = _as_arrays(y_true, y_prob)
    confidence = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        mean_acc = np.where(count > 0, acc_sum / count, np.nan)
    return {
        "edges": np.linspace(0.0, 1.0, n_bins + 1),
        "count": count.astype(np.int64),
        "confidence": mean_conf,
        "accuracy": mean_acc,
    }


def expected_calibration_error(y_true, y_prob, n_bins: int = 15) -> float:
    """Top-label ECE: the count-weighted mean of |accuracy - confidence| over equal-width bins."""
    bins = reliability_bins(y_true, y_prob, n_bins)
    filled = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][filled] - bins["confidence"][filled])
    return float((gaps * bins["count"][filled]).sum() / bins["count"].sum())


def brier_score(y_true, y_prob) -> float:
    """Multi-class Brier score: mean over examples of the squared distance to the one-hot label.

    Summed over the K classes (Brier's 1950 definition), so it ranges from 0 to 2: scikit-learn's
    ``brier_score_loss`` over all K columns, without its halving of binary scores.
    """
    import warnings

    from sklearn.metrics import brier_score_loss

    y_true, y_prob = _as_arrays(y_true, y_prob)
    if len(y_true) == 0 or y_prob.shape[1] < 2 or not np.isfinite(y_prob).all():
        return math.nan  # no score to give; scikit-learn would refuse (or read one column as binary)
    with warnings.catch_warnings():
        # Rows of float32 probabilities sum to one only to float32 precision; the score is still the score.
        warnings.filterwarnings("ignore", message="The y_prob values do not sum to one")
        return float(brier_score_loss(y_true, y_prob, labels=list(range(y_prob.shape[1])), scale_by_half=False))
