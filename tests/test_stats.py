"""Bootstrap intervals, paired tests and calibration: exact values on hand cases, nominal rates on synthetic data."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import brier_score_loss

from harness.metrics import stats
from harness.metrics.quality import classification_metrics


def synthetic(n: int, k: int, seed: int, round_to: int | None = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities that lean towards the label; rounding makes ties in the scores."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k), n)
    p[np.arange(n), y] += 0.6
    p /= p.sum(axis=1, keepdims=True)
    return y, (np.round(p, round_to) if round_to else p)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_point_metrics_equal_the_harness_metrics(k):
    y, p = synthetic(500, k, seed=k)
    reference = classification_metrics(y, p, [f"c{i}" for i in range(k)])
    assert stats.accuracy(y, p) == pytest.approx(reference["accuracy"], abs=1e-12)
    assert stats.macro_f1(y, p) == pytest.approx(reference["f1_macro"], abs=1e-12)
    assert stats.roc_auc(y, p) == pytest.approx(reference["roc_auc"], abs=1e-12)


def test_macro_f1_leaves_out_a_class_absent_from_the_labels():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.9, 0.0], [0.3, 0.7, 0.0]])
    # class 0: P=1, R=1/2 -> F1 2/3; class 1: P=2/3, R=1 -> F1 4/5; class 2 has no row: not averaged (it was a 0)
    assert stats.macro_f1(y, p) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_roc_auc_is_nan_for_a_single_class_and_the_interval_skips_such_resamples():
    assert math.isnan(stats.roc_auc([1, 1, 1], [[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]]))
    # One positive in 20: about e^-1 = 37% of resamples hold no positive and are skipped.
    y = np.array([1] + [0] * 19)
    p = np.c_[1 - np.linspace(0.9, 0.0, 20), np.linspace(0.9, 0.0, 20)]
    ci = stats.bootstrap_ci(y, p, stats.roc_auc, n_boot=1000, seed=3)
    assert ci["point"] == 1.0
    assert 550 < ci["n_boot"] < 720
    assert ci["low"] == 1.0 and ci["high"] == 1.0


def test_bootstrap_is_reproducible_and_brackets_the_point():
    y, p = synthetic(400, 3, seed=1)
    first = stats.bootstrap_ci(y, p, stats.macro_f1, n_boot=500, seed=7)
    assert first == stats.bootstrap_ci(y, p, stats.macro_f1, n_boot=500, seed=7)
    assert first["low"] < first["point"] < first["high"]
    shared = stats.bootstrap_cis(y, p, {"f1": stats.macro_f1}, n_boot=500, seed=7)
    assert shared["f1"] == first


def test_a_callers_own_metric_works_without_a_vectorised_form():
    y, p = synthetic(200, 2, seed=2)

    def error_rate(y_true, y_prob):
        return float(np.mean(y_prob.argmax(axis=1) != y_true))

    ci = stats.bootstrap_ci(y, p, error_rate, n_boot=200, seed=0)
    reference = stats.bootstrap_ci(y, p, stats.accuracy, n_boot=200, seed=0)
    assert ci["point"] == pytest.approx(1 - reference["point"])
    assert ci["low"] == pytest.approx(1 - reference["high"]) and ci["high"] == pytest.approx(
        1 - reference["low"]
    )


def test_accuracy_interval_covers_the_true_value_at_about_the_nominal_rate():
    # Each prediction is right with probability 0.8, so the population accuracy is exactly 0.8.
    rng = np.random.default_rng(0)
    covered = 0
    reps, n = 200, 300
    for rep in range(reps):
        y = rng.integers(0, 2, n)
        right = rng.random(n) < 0.8
        pred = np.where(right, y, 1 - y)
        p = np.c_[1 - pred, pred].astype(float)
        ci = stats.bootstrap_ci(y, p, stats.accuracy, n_boot=400, seed=rep)
        covered += ci["low"] <= 0.8 <= ci["high"]
    assert 0.90 <= covered / reps <= 0.99


def test_roc_auc_interval_covers_the_true_value_at_about_the_nominal_rate():
    # Scores N(0,1) for negatives and N(1,1) for positives: AUC = Phi(1 / sqrt(2)).
    true_auc = scipy_stats.norm.cdf(1 / math.sqrt(2))
    rng = np.random.default_rng(1)
    covered = 0
    reps, n = 200, 300
    for rep in range(reps):
        y = rng.integers(0, 2, n)
        score = 1 / (1 + np.exp(-(rng.normal(size=n) + y)))
        ci = stats.bootstrap_ci(y, np.c_[1 - score, score], stats.roc_auc, n_boot=400, seed=rep)
        covered += ci["low"] <= true_auc <= ci["high"]
    assert 0.90 <= covered / reps <= 0.99


def _two_models(n: int, acc_a: float, acc_b: float, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, n)

    def model(acc):
        right = rng.random(n) < acc
        pred = np.where(right, y, 1 - y)
        conf = rng.uniform(0.55, 0.95, n)
        return np.c_[np.where(pred == 0, conf, 1 - conf), np.where(pred == 1, conf, 1 - conf)]

    return y, model(acc_a), model(acc_b)


def test_paired_bootstrap_finds_a_planted_difference():
    rng = np.random.default_rng(5)
    found = 0
    for rep in range(20):
        y, a, b = _two_models(2000, 0.85, 0.80, rng)
        result = stats.paired_bootstrap(y, a, b, stats.accuracy, n_boot=500, seed=rep)
        assert result["diff"] == pytest.approx(stats.accuracy(y, a) - stats.accuracy(y, b))
        found += result["p_value"] < 0.05 and result["low"] > 0
    assert found >= 18


def test_paired_bootstrap_does_not_find_a_difference_where_there_is_none():
    rng = np.random.default_rng(6)
    rejected = 0
    reps = 60
    for rep in range(reps):
        y, a, b = _two_models(1000, 0.8, 0.8, rng)
        rejected += stats.paired_bootstrap(y, a, b, stats.macro_f1, n_boot=400, seed=rep)["p_value"] < 0.05
    assert rejected / reps <= 0.12
    y, a, _ = _two_models(500, 0.8, 0.8, rng)
    same = stats.paired_bootstrap(y, a, a.copy(), stats.roc_auc, n_boot=200)
    assert same["diff"] == 0.0 and same["p_value"] == 1.0 and same["low"] == same["high"] == 0.0


def test_paired_bootstrap_shares_resamples_so_correlated_models_are_separated():
    # B copies A and flips 30 of A's 850 right answers: a small difference, but every resample sees it.
    rng = np.random.default_rng(7)
    y, a, _ = _two_models(1000, 0.85, 0.85, rng)
    b = a.copy()
    right = np.flatnonzero(a.argmax(axis=1) == y)[:30]
    b[right] = b[right][:, ::-1]
    result = stats.paired_bootstrap(y, a, b, stats.accuracy, n_boot=1000)
    assert result["diff"] == pytest.approx(0.03)
    assert result["p_value"] < 0.01 and result["low"] > 0
    unpaired_a = stats.bootstrap_ci(y, a, stats.accuracy)
    unpaired_b = stats.bootstrap_ci(y, b, stats.accuracy, seed=1)
    assert unpaired_a["low"] < unpaired_b["high"]  # separate intervals overlap: only the paired test can tell


def test_mcnemar_exact_and_chi_squared():
    y = np.zeros(30, dtype=int)
    result = stats.mcnemar(y, np.r_[np.zeros(20), np.ones(10)], np.r_[np.zeros(10), np.ones(20)])
    assert (result["b"], result["c"], result["method"]) == (10, 0, "exact")
    assert result["p_value"] == pytest.approx(2 * 0.5**10)
    balanced = stats.mcnemar(
        np.zeros(10, int), np.r_[np.zeros(7), np.ones(3)], np.r_[np.ones(3), np.zeros(7)]
    )
    assert (balanced["b"], balanced["c"], balanced["p_value"]) == (3, 3, 1.0)
    assert balanced["p_value"] == pytest.approx(scipy_stats.binomtest(3, 6).pvalue)
    # b = 40, c = 20: chi2 = (|40 - 20| - 1)^2 / 60 with one degree of freedom
    y = np.zeros(100, int)
    a = np.r_[np.zeros(40), np.ones(20), np.zeros(40)]
    b = np.r_[np.ones(40), np.zeros(20), np.zeros(40)]
    big = stats.mcnemar(y, a, b)
    assert (big["b"], big["c"], big["method"]) == (40, 20, "chi2")
    assert big["statistic"] == pytest.approx(19**2 / 60)
    assert big["p_value"] == pytest.approx(scipy_stats.chi2.sf(19**2 / 60, 1))
    probs = np.eye(2)[a.astype(int)]
    assert stats.mcnemar(y, probs, b) == big
    assert stats.mcnemar(y, a, a)["p_value"] == 1.0


def test_ece_near_zero_when_calibrated_and_exact_when_known():
    rng = np.random.default_rng(0)
    n = 200_000
    conf = rng.uniform(0.5, 1.0, n)
    y = np.zeros(n, dtype=int)
    predicted = np.where(rng.random(n) < conf, 0, 1)  # right (class 0) with probability = confidence
    p = np.where(predicted[:, None] == np.arange(2), conf[:, None], 1 - conf[:, None])
    assert stats.expected_calibration_error(y, p) < 0.01
    # Always 90% sure, right 60% of the time: the gap is 0.3 in the one filled bin.
    y = np.r_[np.zeros(6, int), np.ones(4, int)]
    p = np.tile([0.9, 0.1], (10, 1))
    assert stats.expected_calibration_error(y, p) == pytest.approx(0.3)
    # Two bins: 0.95 confident and always right (gap 0.05), 0.55 confident and right half the time (0.05).
    y = np.array([0, 0, 0, 1])
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    assert stats.expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.05)


def test_reliability_bins_edges_and_counts():
    p = np.array([[1 / 3, 1 / 3, 1 / 3], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0], [0.5, 0.3, 0.2]])
    bins = stats.reliability_bins([0, 1, 0, 0], p, n_bins=10)
    assert bins["edges"][0] == 0.0 and bins["edges"][-1] == 1.0 and len(bins["edges"]) == 11
    assert bins["count"].tolist() == [
        0,
        0,
        0,
        1,
        1,
        0,
        0,
        1,
        0,
        1,
    ]  # (0.3,0.4], (0.4,0.5], (0.7,0.8], (0.9,1]
    assert bins["accuracy"][3] == 1.0 and bins["accuracy"][9] == 0.0 and math.isnan(bins["accuracy"][0])
    assert bins["confidence"][7] == pytest.approx(0.8)


def test_brier_score_hand_cases():
    # (0.2^2 + 0.2^2 + 0.4^2 + 0.4^2) / 2
    assert stats.brier_score([0, 1], [[0.8, 0.2], [0.4, 0.6]]) == pytest.approx(0.2)
    assert stats.brier_score([2], [[0.2, 0.3, 0.5]]) == pytest.approx(0.04 + 0.09 + 0.25)
    y, p = synthetic(300, 2, seed=4, round_to=None)
    assert stats.brier_score(y, p) == pytest.approx(2 * brier_score_loss(y, p[:, 1]))


def test_thousand_resamples_of_the_seed_benchmark_size_are_fast():
    y, p = synthetic(6459, 2, seed=0)
    start = time.perf_counter()
    result = stats.bootstrap_cis(
        y, p, {"acc": stats.accuracy, "f1": stats.macro_f1, "auc": stats.roc_auc}, n_boot=1000
    )
    seconds = time.perf_counter() - start
    assert all(r["n_boot"] == 1000 for r in result.values())
    # Well under a second on an idle core; the bound leaves room for a machine shared with other work.
    assert seconds < 2.0


def _hand_binom_two_sided(k: int, n: int) -> float:
    """The exact test as the harness wrote it by hand before scipy's binomtest (kept to compare)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    return min(1.0, 2.0 * sum(math.exp(t) for t in terms))


def _hand_brier(y_true, y_prob) -> float:
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob, dtype=np.float64)
    one_hot = np.zeros_like(y_prob)
    one_hot[np.arange(len(y_true)), y_true] = 1.0
    return float(((y_prob - one_hot) ** 2).sum(axis=1).mean())


def test_exact_mcnemar_through_scipy_gives_the_hand_written_values():
    """Every (k, n) of the exact branch (n below 25 discordant pairs, and beyond): scipy's p-value is the
    exact binomial sum, the old one's to rounding (they differ by at most 1e-13 relative, ~0.25000000000000006
    against 0.25 for n = 3), and equal to the exact rational value to the same precision."""
    from fractions import Fraction

    for n in range(0, 80):
        for k in range(0, n + 1):
            new, old = stats._binom_two_sided(k, n), _hand_binom_two_sided(k, n)
            low = min(k, n - k)
            exact = 1.0 if n == 0 else float(min(1, 2 * Fraction(sum(math.comb(n, i) for i in range(low + 1)), 2**n)))
            assert new == pytest.approx(old, rel=1e-13, abs=0) and new == pytest.approx(exact, rel=1e-13, abs=0)
    assert stats._binom_two_sided(0, 3) == 0.25 and stats._binom_two_sided(3, 6) == 1.0


def test_brier_through_scikit_learn_gives_the_hand_written_values_exactly():
    rng = np.random.default_rng(0)
    for classes in (2, 3, 5, 14):
        for n in (1, 7, 300):
            y = rng.integers(0, classes, n)
            p = rng.dirichlet(np.ones(classes), size=n)
            assert stats.brier_score(y, p) == _hand_brier(y, p)
            p32 = p.astype(np.float32)  # rows sum to one only to float32 precision: no warning, same value
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert stats.brier_score(y, p32) == _hand_brier(y, p32)
    assert math.isnan(stats.brier_score([0, 1], [[math.nan, 0.5], [0.5, 0.5]]))
