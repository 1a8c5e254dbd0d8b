"""What the leaderboard's numbers are made of: per-example predictions read back from the store.

Uncertainty of each model's scores (bootstrap intervals, calibration) and paired tests against the leader.
The error analysis drawn from the same predictions is ``harness.report.error_sections``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.metrics import stats
from harness.metrics.columns import columns
from harness.store.results_store import ResultsStore

# Headline metrics with an interval: the catalogue's table columns that declare one, name -> stats function.
CI_METRICS = {column.name: column.interval for column in columns("table") if column.interval is not None}
# The metric the tie test runs on when none is given (a benchmark's main_metric chooses: report.board).
RANK_METRIC = "f1_macro"
TIE_ALPHA = 0.05
# Resamples for intervals and paired tests: with 10,000 the smallest p a test can show is about 1e-4.
N_BOOT = 10_000


@dataclass(frozen=True)
class Predictions:
    """One run's per-example predictions, in the order of its predictions.csv."""

    model: str
    seed: int
    ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    def __len__(self) -> int:
        return len(self.ids)


def read_predictions(run_dir: Path, model: str, seed: int, num_labels: int) -> Predictions | None:
    """A run's predictions.csv as arrays, or None when the file is missing or has other classes."""
    path = Path(run_dir) / "predictions.csv"
    if not path.exists():
        return None
    frame = ResultsStore.read_predictions(run_dir)
    prob_columns = [f"prob_{k}" for k in range(num_labels)]
    if any(c not in frame.columns for c in prob_columns):
        return None
    groups = {
        c.removeprefix("group_"): frame[c].astype(str).to_numpy()
        for c in frame.columns
        if c.startswith("group_")
    }
    return Predictions(
        model=model,
        seed=int(seed),
        ids=frame["id"].to_numpy(dtype=np.int64),
        labels=frame["label"].to_numpy(dtype=np.int64),
        probs=frame[prob_columns].to_numpy(dtype=np.float64),
        groups=groups,
    )


def load_model_predictions(runs: list, read) -> list[Predictions]:
    """Predictions of a model's completed runs (``StoredRun``), lowest seed first, all on the same examples.

    ``read`` gives a run's predictions (``PredictionFiles.of`` of the board, which reads each file once), or
    None. Seeds scored on other examples than the first seed (a store edited by hand) are left out, so every
    statistic over seeds compares like with like.
    """
    out: list[Predictions] = []
    for run in sorted(runs, key=lambda r: r.result.seed):
        if not run.result.completed:
            continue
        preds = read(run)
        if preds is None:
            continue
        if out and not np.array_equal(out[0].ids, preds.ids):
            continue
        out.append(preds)
    return out


def identical_predictions(runs: list[Predictions]) -> bool:
    """True when several seeds gave exactly the same probabilities (a deterministic model)."""
    return len(runs) > 1 and all(np.array_equal(runs[0].probs, r.probs) for r in runs[1:])


def aligned(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of ``a`` and ``b`` for the examples both scored, in the same order, and the ids."""
    common, ia, ib = np.intersect1d(a.ids, b.ids, assume_unique=True, return_indices=True)
    return ia, ib, common


# --------------------------------------------------------------------------------------------------
# Uncertainty, calibration and the tie test
# --------------------------------------------------------------------------------------------------


def model_statistics(runs: list[Predictions], n_boot: int = N_BOOT, n_bins: int = 15, metrics: dict | None = None) -> dict:
    """Intervals of the mean over seeds (resampling test examples), and ECE / Brier of every seed.

    Returns:
        ``{"seeds", "n", "ci": {metric: {"point", "low", "high", "n_boot", "seeds"}}, "ece": [per seed],
        "brier": [per seed]}``.
    """
    first = runs[0]
    metrics = metrics if metrics is not None else CI_METRICS  # name -> vectorised metric (the main one included)
    ci = stats.seed_mean_bootstrap_cis(first.labels, [r.probs for r in runs], metrics, n_boot=n_boot, seed=0)
    return {
        "seeds": [r.seed for r in runs],
        "n": len(first),
        "ci": ci,
        "ece": [stats.expected_calibration_error(r.labels, r.probs, n_bins) for r in runs],
        "brier": [stats.brier_score(r.labels, r.probs) for r in runs],
    }


def compare_to_leader(
    leader: list[Predictions], other: list[Predictions], n_boot: int = N_BOOT, metric=None
) -> dict | None:
    """Paired bootstrap of the ranking metric (``metric``, a vectorised one of ``metrics.stats``; default macro-F1)
    over every seed, and McNemar's exact test per seed pair.

    Only the examples both models scored are compared. ``tied`` is true when the paired bootstrap of the
    difference of seed means cannot tell them apart at the 5% level (p >= 0.05). McNemar pairs the i-th seed
    of each model (as many pairs as the smaller seed count) and reports each pair's exact p; a model with one
    seed is paired with every seed of the other. None when they share no example.
    """
    ia, ib, common = aligned(leader[0], other[0])
    if len(common) == 0:
        return None
    labels = leader[0].labels[ia]
    paired = stats.paired_seed_mean_bootstrap(
        labels, [r.probs[ib] for r in other], [r.probs[ia] for r in leader], metric or CI_METRICS[RANK_METRIC],
        n_boot=n_boot, seed=0,
    )
    pairs = list(zip(other, leader, strict=False)) if min(len(other), len(leader)) > 1 else [
        (o, ld) for o in other for ld in leader
    ]
    tests = [
        {"seed": o.seed, "leader_seed": ld.seed, **stats.mcnemar(labels, o.predicted[ib], ld.predicted[ia], exact_below=10**9)}
        for o, ld in pairs
    ]
    p = paired["p_value"]
    return {
        "n": int(len(common)),
        "paired_bootstrap": paired,
        "mcnemar": tests,
        "tied": bool(math.isfinite(p) and p >= TIE_ALPHA),
    }
