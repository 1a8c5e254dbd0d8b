"""Per-group scores and cross-group transfer matrices, from the predictions the leaderboard already holds.

Part of the report layer: every score here is computed from predictions the board read once
(:class:`~harness.report.board.Leaderboard`, ``predictions.csv`` with its ``group_<column>`` columns), so
``--report-only`` rebuilds it without training. A group column is any column a benchmark declares in
``group_columns`` (language, domain, source): nothing is specific to languages.

Two views:

- per group: a model x group-value table of macro-F1 with 95% bootstrap intervals, and a heatmap;
- transfer: for each model, rows = what it was trained on (``all`` = the whole train split, then each
  value alone, from ``--transfer-matrix COLUMN`` or ``--train-filter COLUMN=V``), columns = the value it
  is tested on. The diagonal is in-group training; off the diagonal is zero-shot transfer, as in the
  XLM-R (Conneau et al. 2020) and XLM-T (Barbieri et al. 2022) cross-lingual tables.

The tables are data (:class:`RunScores`); ``harness.report.sections`` turns them into sections and this module
draws their heatmaps.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field

import numpy as np

from harness.core.escape import figure_text
from harness.metrics import stats
from harness.report.analysis import Predictions
from harness.store.results_store import StoredRun

ALL_ROW = "all"
PLOTS_DIR = "plots"
N_BOOT = 1000  # resamples of a group's examples for its interval (the captions say 1,000)


@dataclass
class Cell:
    """Macro-F1 of one run on one group value, with its bootstrap interval (nan when not computable)."""

    point: float
    low: float = math.nan
    high: float = math.nan
    n: int = 0


@dataclass
class RunScores:
    """One stored run's per-group scores for one column."""

    model: str
    seed: int
    train_rows: int | None
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class FirstRun:
    """A model's lowest-seed completed run on one training set, with its predictions (None: none readable)."""

    run: StoredRun
    predictions: Predictions | None


@dataclass(frozen=True)
class TrainingSet:
    """The first runs of every model trained on one subset of the train split, and the exact filter."""

    train_filter: dict[str, list[str]] | None
    first: dict[str, FirstRun]


def variant_filter(runs: list[StoredRun]) -> dict[str, list[str]] | None:
    """The exact train filter of a variant, as its runs recorded it."""
    for run in runs:
        found = run.result.train_filter or (run.result.data.train_filter if run.result.data else None)
        if found:
            return {str(k): sorted(map(str, v)) for k, v in found.items()}
    return None


def score_groups(
    y_true: np.ndarray, y_prob: np.ndarray, groups: np.ndarray, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, Cell]:
    """Macro-F1 and its percentile-bootstrap 95% interval for each value of a group column.

    Args:
        y_true: integer labels, shape (n,).
        y_prob: class probabilities, shape (n, K).
        groups: the group value of each example, shape (n,).
        n_boot: bootstrap resamples per group (resampling examples within the group).
        seed: resampling seed, so a rebuilt report shows the same intervals.

    Returns:
        ``{value: Cell}`` in sorted value order.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    groups = np.asarray(groups).astype(str)
    out: dict[str, Cell] = {}
    for value in sorted(set(groups.tolist())):
        mask = groups == value
        ci = stats.bootstrap_ci(y_true[mask], y_prob[mask], stats.macro_f1, n_boot=n_boot, seed=seed)
        out[value] = Cell(ci["point"], ci["low"], ci["high"], int(mask.sum()))
    return out


def run_scores(first: FirstRun, column: str, n_boot: int = N_BOOT) -> RunScores | None:
    """A run's per-group scores from its predictions; from ``group_metrics`` (no interval) if those lack the column."""
    result, preds = first.run.result, first.predictions
    scores = RunScores(model=result.model, seed=result.seed, train_rows=result.data.train_rows if result.data else None)
    if preds is not None and column in preds.groups:
        scores.cells = score_groups(preds.labels, preds.probs, preds.groups[column], n_boot)
        return scores
    stored = result.group_metrics.get(column)
    if not stored:
        return None
    scores.cells = {str(v): Cell(float(m.f1_macro), n=int(m.n)) for v, m in sorted(stored.items())}
    return scores


# --------------------------------------------------------------------------------------------------
# Per-group table and transfer matrices (data)
# --------------------------------------------------------------------------------------------------


def per_group_scores(
    first: dict[str, FirstRun], column: str, model_order: list[str] | None = None, n_boot: int = N_BOOT
) -> list[RunScores]:
    """Per-group scores of each model's first completed run on the whole train split, in ``model_order``."""
    order = [m for m in (model_order or []) if m in first] + sorted(m for m in first if m not in (model_order or []))
    out = []
    for model in order:
        scores = run_scores(first[model], column, n_boot)
        if scores is not None and scores.cells:
            out.append(scores)
    return out


def transfer_matrices(
    whole: TrainingSet, filtered: list[TrainingSet], column: str, n_boot: int = N_BOOT
) -> dict[str, dict[str, RunScores]]:
    """``{model: {train row: RunScores}}`` for runs trained on subsets defined by ``column`` alone.

    The row ``all`` is the model's run on the whole train split (``whole``); the other rows are the filtered
    training sets (``en``, or ``en+fr`` for a filter with several values). Only models with at least one
    filtered run appear.
    """
    rows: dict[str, TrainingSet] = {}
    for training in filtered:
        found = training.train_filter
        if found and list(found) == [column]:
            rows["+".join(found[column])] = training
    out: dict[str, dict[str, RunScores]] = {}
    for row, training in rows.items():
        for model, first in training.first.items():
            scores = run_scores(first, column, n_boot)
            if scores is not None:
                out.setdefault(model, {})[row] = scores
    for model, first in whole.first.items():
        if model in out:
            scores = run_scores(first, column, n_boot)
            if scores is not None:
                out[model][ALL_ROW] = scores
    return out


def row_order(rows) -> list[str]:
    """Transfer rows in reading order: ``all``, then single values, then combinations."""
    singles = sorted(r for r in rows if r != ALL_ROW and "+" not in r)
    multi = sorted(r for r in rows if "+" in r)
    return ([ALL_ROW] if ALL_ROW in rows else []) + singles + multi


def transfer_summary(matrix: dict[str, RunScores]) -> dict[str, float]:
    """Mean in-group (diagonal) and zero-shot (off-diagonal) macro-F1 over the single-value rows."""
    diagonal, off = [], []
    for row, scores in matrix.items():
        if row == ALL_ROW or "+" in row:
            continue
        for value, cell in scores.cells.items():
            (diagonal if value == row else off).append(cell.point)
    summary = {
        "in_group": float(np.mean(diagonal)) if diagonal else math.nan,
        "zero_shot": float(np.mean(off)) if off else math.nan,
    }
    summary["gap"] = summary["in_group"] - summary["zero_shot"]
    if ALL_ROW in matrix:
        summary["all"] = float(np.mean([c.point for c in matrix[ALL_ROW].cells.values()]))
    return summary


def group_values(scored: list[RunScores]) -> list[str]:
    return sorted({v for s in scored for v in s.cells})


def transfer_values(matrices: dict[str, dict[str, RunScores]]) -> list[str]:
    return sorted({v for m in matrices.values() for s in m.values() for v in s.cells})


# --------------------------------------------------------------------------------------------------
# Heatmaps
# --------------------------------------------------------------------------------------------------


def _file_part(name: str) -> str:
    """A plot file name piece: model and group names are safe names already; this keeps it so."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def per_group_figure(column: str) -> str:
    """Where the heatmap of a per-group table lies, relative to the leaderboard."""
    return f"{PLOTS_DIR}/groups_{_file_part(column)}_f1.png"


def transfer_figure(column: str, model: str) -> str:
    """Where a model's transfer heatmap lies, relative to the leaderboard."""
    return f"{PLOTS_DIR}/transfer_{_file_part(column)}_{_file_part(model)}.png"


def per_group_png(benchmark: str, column: str, scored: list[RunScores]) -> bytes:
    values = group_values(scored)
    matrix = np.array([[s.cells[v].point if v in s.cells else np.nan for v in values] for s in scored])
    return heatmap_png(matrix, [s.model for s in scored], values, f"{benchmark}: macro-F1 per {column}", column, "model")


def transfer_pngs(column: str, matrices: dict[str, dict[str, RunScores]]) -> dict[str, bytes]:
    """Each model's train x test heatmap, on one colour scale so colours compare across models."""
    values = transfer_values(matrices)
    every = [c.point for m in matrices.values() for s in m.values() for c in s.cells.values() if math.isfinite(c.point)]
    vmin, vmax = (min(every), max(every)) if every else (None, None)
    out = {}
    for model in sorted(matrices):
        matrix = matrices[model]
        order = row_order(matrix)
        grid = np.array([[matrix[r].cells[v].point if v in matrix[r].cells else np.nan for v in values] for r in order])
        outline = [(i, values.index(r)) for i, r in enumerate(order) if r in values]
        title = f"{model}: train {column} x test {column} (macro-F1)"
        out[transfer_figure(column, model)] = heatmap_png(
            grid, order, values, title, f"test {column}", f"train {column}", vmin, vmax, outline,
            rule_below_first=order[0] == ALL_ROW,
        )
    return out


def heatmap_png(
    matrix: np.ndarray,
    row_labels: list[str],
    col_labels: list[str],
    title: str,
    xlabel: str,
    ylabel: str,
    vmin: float | None = None,
    vmax: float | None = None,
    outline: list[tuple[int, int]] | None = None,
    rule_below_first: bool = False,
) -> bytes:
    """An annotated heatmap (nan cells blank) as PNG bytes; labels, title and axis names are drawn as written.

    ``outline`` cells get a red frame (the diagonal of a transfer matrix); ``rule_below_first`` draws a
    white line under the first row (the ``all`` row, which is not part of the square).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = matrix.shape
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * max(cols, 2), 1.3 + 0.5 * max(rows, 2)), dpi=110)
    finite = matrix[np.isfinite(matrix)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(cols), [figure_text(c) for c in col_labels])
    ax.set_yticks(range(rows), [figure_text(r) for r in row_labels])
    ax.set_xlabel(figure_text(xlabel))
    ax.set_ylabel(figure_text(ylabel))
    ax.set_title(figure_text(title), fontsize=10)
    for i in range(rows):
        for j in range(cols):
            value = matrix[i, j]
            if np.isfinite(value):
                # Dark text on the light (high) end of viridis, light text on the dark end.
                light = (value - lo) / (hi - lo) > 0.6
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if light else "white",
                )
    for i, j in outline or []:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    if rule_below_first and rows > 1:
        ax.axhline(0.5, color="white", linewidth=3)
    fig.colorbar(image, ax=ax, label="macro-F1", fraction=0.046, pad=0.04)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
