"""Ranks across benchmarks: per-benchmark score and rank, and the mean rank's interval by a paired bootstrap.

Each benchmark ranks by its own main metric (``main_metric`` of its YAML: accuracy on one, macro-F1 on another),
in its direction; the ranks, not the scores, are averaged, so benchmarks of different metrics combine.

Drawn from each benchmark's :class:`~harness.report.board.Leaderboard` (its rows and the predictions it holds);
``harness.suite`` runs the benchmarks and writes the summary of :func:`summarize`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from harness.metrics.columns import columns as metric_columns
from harness.report import analysis
from harness.report.board import Leaderboard, ModelRow

# Resamples of the mean-rank interval (as many as the leaderboards' own intervals), and a fixed seed.
N_BOOT = analysis.N_BOOT
_CHUNK = 250  # bootstrap rows drawn at once: bounds memory at about _CHUNK x (distinct patterns) x 8 bytes


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _row_cost(row: ModelRow) -> dict[str, float | None]:
    """A model's cost on one benchmark, mean over its seeds."""
    results = row.results

    def peak(result, kind: str) -> float | None:
        memory = result.memory
        if memory is None:
            return None
        values = [getattr(getattr(memory, phase), kind) for phase in ("train", "inference")]
        values = [v for v in values if v is not None]
        return max(values) / 2**20 if values else None

    return {
        "latency_p50_ms": _mean(
            r.inference.latency_batch1_end_to_end.p50_ms
            for r in results
            if r.inference is not None and r.inference.latency_batch1_end_to_end is not None
        ),
        "train_seconds": _mean(r.training.train_seconds for r in results if r.training is not None),
        "peak_rss_mib": _mean(peak(r, "rss_peak_bytes") for r in results),
        "peak_cuda_mib": _mean(peak(r, "cuda_peak_allocated_bytes") for r in results),
    }


def ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks by score along the last axis: 1 = highest, ties share the mean of their ranks, -inf (did not run)
    shares the last places."""
    return rankdata(-np.asarray(scores, dtype=np.float64), method="average", axis=-1)


def _sign(board: Leaderboard) -> float:
    """+1 when the board's main metric is better higher, -1 when lower: scores times it rank best first."""
    return 1.0 if board.main.higher_is_better else -1.0


def score_resamples(board: Leaderboard, models: list[str], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The board's main metric of every model on ``n_boot`` resamples of its test examples: (n_boot, models),
    negated when lower is better, so higher always ranks first.

    One resample draws the test examples with replacement, the same draw for every model and seed (a paired
    bootstrap); a model's score is the mean over its seeds, as in its leaderboard. Examples are grouped by their
    (label, every run's prediction) pattern and the draw is a multinomial over the patterns: the same
    distribution as drawing examples, at a cost that does not grow with the test set. A model that did not
    complete scores -inf; one whose predictions are missing, or any model when the main metric has no interval
    function (an extra metric), keeps its leaderboard score on every resample.
    """
    main, sign = board.main, _sign(board)
    rows = {row.model: row for row in board.rows}
    out = np.full((n_boot, len(models)), -np.inf)
    runs: dict[int, list[analysis.Predictions]] = {}
    for j, model in enumerate(models):
        row = rows.get(model)
        if row is None or not row.results:
            continue
        if row.predictions and main.interval is not None:
            runs[j] = row.predictions
        elif (value := row.mean(main.name)) is not None:
            out[:, j] = sign * value
    if not runs:
        return out
    every = [p for preds in runs.values() for p in preds]
    common = every[0].ids
    for p in every[1:]:
        common = np.intersect1d(common, p.ids)
    if len(common) == 0:
        return out

    def on_common(p: analysis.Predictions, values: np.ndarray) -> np.ndarray:
        _, index, _ = np.intersect1d(p.ids, common, assume_unique=True, return_indices=True)
        return values[index]

    columns = [on_common(every[0], every[0].labels)] + [on_common(p, p.predicted) for p in every]
    patterns, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    n, one_hot = int(counts.sum()), np.eye(board.spec.num_labels)
    truth = patterns[:, 0]
    for start in range(0, n_boot, _CHUNK):
        size = min(_CHUNK, n_boot - start)
        weights = rng.multinomial(n, counts / n, size=size).astype(np.float64)
        column = 1
        for j, preds in runs.items():
            scores = [
                main.interval.weighted(truth, one_hot[patterns[:, column + s]], weights)
                for s in range(len(preds))
            ]
            out[start : start + size, j] = sign * np.mean(scores, axis=0)
            column += len(preds)
    return out


def rank_resamples(
    boards: list[Leaderboard], models: list[str], n_boot: int = N_BOOT, seed: int = 0
) -> np.ndarray:
    """Mean rank over the benchmarks of every model on each bootstrap resample, (n_boot, models).

    Every benchmark's test examples are resampled independently (:func:`score_resamples`, on its main metric),
    the models are ranked on each benchmark and the ranks averaged: the spread is what the finite test sets leave uncertain about the
    mean rank, for these benchmarks (not for other benchmarks one might have chosen).
    """
    rng = np.random.default_rng(seed)
    total = np.zeros((n_boot, len(models)))
    for board in boards:
        total += ranks(score_resamples(board, models, n_boot, rng))
    return total / max(len(boards), 1)


def _scores(boards: dict[str, Leaderboard], models: list[str]) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """The main metric and macro-F1 (benchmarks, models), nan where a model did not complete; each suite column of
    the catalogue and each cost figure the same shape."""
    f1 = np.full((len(boards), len(models)), np.nan)
    main = np.full(f1.shape, np.nan)
    quality = {column.name: np.full(f1.shape, np.nan) for column in metric_columns("suite")}
    costs: dict[str, np.ndarray] = {}
    for b, board in enumerate(boards.values()):
        rows = {row.model: row for row in board.rows}
        for j, model in enumerate(models):
            row = rows.get(model)
            if row is None or not row.results:
                continue
            f1[b, j] = row.f1_macro
            main[b, j] = np.nan if (value := row.mean(board.main.name)) is None else value
            for name, values in quality.items():
                values[b, j] = np.nan if (value := row.mean(name)) is None else value
            for key, value in _row_cost(row).items():
                costs.setdefault(key, np.full(f1.shape, np.nan))[b, j] = np.nan if value is None else value
    return main, f1, quality, costs


def _mean_over_done(values: np.ndarray) -> list[float]:
    return [float(np.mean(v[~np.isnan(v)])) if (~np.isnan(v)).any() else np.nan for v in values.T]


def summarize(boards: dict[str, Leaderboard], models: list[str], n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per model: per-benchmark main metric, macro-F1 and rank, mean rank with its interval, mean cost.

    ``boards``: each benchmark that ran, by name, in suite order. Columns: ``model``, ``mean_rank``,
    ``mean_rank_low``/``_high`` (95% percentile bootstrap interval), ``best_rank``, ``worst_rank``,
    ``mean_<column>`` for the catalogue's suite columns (``mean_f1_macro``, ``mean_mcc``...: over the benchmarks it
    completed), ``benchmarks_completed``, ``score[<benchmark>]`` (its main metric, what it ranks by),
    ``f1_macro[<benchmark>]`` and ``rank[<benchmark>]`` per benchmark, then ``latency_p50_ms``, ``train_seconds``, ``peak_rss_mib`` and
    ``peak_cuda_mib`` (means over the benchmarks it completed). Sorted by mean rank.
    """
    columns = {"model": list(models)}
    if not boards or not models:
        return pd.DataFrame(columns)
    main, f1, quality, costs = _scores(boards, models)
    signs = np.array([[_sign(board)] for board in boards.values()])
    point = ranks(np.where(np.isnan(main), -np.inf, signs * main))  # (benchmarks, models)
    resampled = rank_resamples(list(boards.values()), models, n_boot, seed)
    done = ~np.isnan(f1)
    with np.errstate(invalid="ignore"):
        columns.update(
            {
                "mean_rank": point.mean(axis=0),
                "mean_rank_low": np.percentile(resampled, 2.5, axis=0),
                "mean_rank_high": np.percentile(resampled, 97.5, axis=0),
                "best_rank": point.min(axis=0),
                "worst_rank": point.max(axis=0),
                **{f"mean_{name}": _mean_over_done(values) for name, values in quality.items()},
                "benchmarks_completed": done.sum(axis=0),
            }
        )
    columns.update({f"score[{name}]": main[b] for b, name in enumerate(boards)})
    columns.update({f"f1_macro[{name}]": f1[b] for b, name in enumerate(boards)})
    columns.update({f"rank[{name}]": point[b] for b, name in enumerate(boards)})
    for key in ("latency_p50_ms", "train_seconds", "peak_rss_mib", "peak_cuda_mib"):
        values = costs.get(key, np.full(f1.shape, np.nan))
        columns[key] = [float(np.mean(v[~np.isnan(v)])) if (~np.isnan(v)).any() else np.nan for v in values.T]
    table = pd.DataFrame(columns)
    table["_f1"] = table["mean_f1_macro"].fillna(-1.0)
    table = table.sort_values(["mean_rank", "_f1", "model"], ascending=[True, False, True], kind="stable")
    return table.drop(columns="_f1").reset_index(drop=True)
