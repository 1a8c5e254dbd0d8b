"""Per-group leaderboards and cross-group transfer matrices, rebuilt from the results store.

Part of the report layer: everything here is read from stored predictions (``predictions.csv`` with its
``group_<column>`` columns), so ``--report-only`` rebuilds it without training. A group column is any
column a benchmark declares in ``group_columns`` (language, domain, source): nothing is specific to
languages.

Two views:

- per group: a model x group-value table of macro-F1 with 95% bootstrap intervals, and a heatmap;
- transfer: for each model, rows = what it was trained on (``all`` = the whole train split, then each
  value alone, from ``--transfer-matrix COLUMN`` or ``--train-filter COLUMN=V``), columns = the value it
  is tested on. The diagonal is in-group training; off the diagonal is zero-shot transfer, as in the
  XLM-R (Conneau et al. 2020) and XLM-T (Barbieri et al. 2022) cross-lingual tables.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tabulate import tabulate

from harness.config.schema import BenchmarkSpec
from harness.core.escape import escape, figure_text
from harness.metrics import stats
from harness.store.results_store import ResultsStore, StoredRun, atomic_write_bytes

if TYPE_CHECKING:
    from harness.report.board import RunSet

ALL_ROW = "all"
PLOTS_DIR = "plots"


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


def _first_completed(runs: RunSet, variant: str | None = None) -> dict[str, StoredRun]:
    """The lowest-seed completed run of every model, so every cell of a table comes from one run."""
    chosen: dict[str, StoredRun] = {}
    for run in runs.runs(variant):
        if not run.result.completed:
            continue
        model = run.result.model
        if model not in chosen or run.result.seed < chosen[model].result.seed:
            chosen[model] = run
    return chosen


def score_groups(
    y_true: np.ndarray, y_prob: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0
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


def run_scores(run: StoredRun, column: str, num_labels: int, n_boot: int = 1000) -> RunScores | None:
    """A run's per-group scores from its predictions; from ``group_metrics`` (no interval) if those lack the column."""
    result = run.result
    scores = RunScores(
        model=result.model,
        seed=result.seed,
        train_rows=result.data.train_rows if result.data else None,
    )
    path = run.run_dir / "predictions.csv"
    if path.exists():
        frame = ResultsStore.read_predictions(run.run_dir)
        prob_cols = [f"prob_{k}" for k in range(num_labels)]
        if f"group_{column}" in frame.columns and all(c in frame.columns for c in prob_cols):
            y_true = frame["label"].to_numpy(dtype=np.int64)
            y_prob = frame[prob_cols].to_numpy(dtype=np.float64)
            scores.cells = score_groups(y_true, y_prob, frame[f"group_{column}"].to_numpy(), n_boot)
            return scores
    stored = result.group_metrics.get(column)
    if not stored:
        return None
    scores.cells = {str(v): Cell(float(m.f1_macro), n=int(m.n)) for v, m in sorted(stored.items())}
    return scores


# --------------------------------------------------------------------------------------------------
# Formatting and plots
# --------------------------------------------------------------------------------------------------


def _cell_text(cell: Cell | None) -> str:
    if cell is None or not math.isfinite(cell.point):
        return "n/a"
    if not (math.isfinite(cell.low) and math.isfinite(cell.high)):
        return f"{cell.point:.3f}"
    return f"{cell.point:.3f} [{cell.low:.3f}, {cell.high:.3f}]"


def _file_part(name: str) -> str:
    """A plot file name piece: model and group names are safe names already; this keeps it so."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


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


# --------------------------------------------------------------------------------------------------
# Per-group leaderboard
# --------------------------------------------------------------------------------------------------


def per_group_scores(
    runs: RunSet,
    spec: BenchmarkSpec,
    column: str,
    model_order: list[str] | None = None,
    n_boot: int = 1000,
) -> list[RunScores]:
    """Per-group scores of each model's first completed run on the whole train split, in ``model_order``."""
    first = _first_completed(runs)
    order = [m for m in (model_order or []) if m in first] + sorted(
        m for m in first if m not in (model_order or [])
    )
    out = []
    for model in order:
        scores = run_scores(first[model], column, spec.num_labels, n_boot)
        if scores is not None and scores.cells:
            out.append(scores)
    return out


def per_group_section(
    runs: RunSet, spec: BenchmarkSpec, column: str, out_dir: Path, model_order: list[str] | None = None
) -> list[str]:
    """Markdown lines (table + embedded heatmap) for one group column; empty when no run has its scores."""
    scored = per_group_scores(runs, spec, column, model_order)
    if not scored:
        return []
    values = sorted({v for s in scored for v in s.cells})
    counts = {v: max(s.cells[v].n for s in scored if v in s.cells) for v in values}
    header = ["model", *[f"{escape(v)} (n={counts[v]})" for v in values], "mean over groups", "worst group"]
    table = []
    for s in scored:
        points = [s.cells[v].point for v in values if v in s.cells]
        worst = min(values, key=lambda v: s.cells[v].point if v in s.cells else math.inf)
        table.append(
            [
                s.model,
                *[_cell_text(s.cells.get(v)) for v in values],
                f"{np.mean(points):.3f}",
                f"{escape(worst)} ({s.cells[worst].point:.3f})",
            ]
        )
    matrix = np.array([[s.cells[v].point if v in s.cells else np.nan for v in values] for s in scored])
    name = f"groups_{_file_part(column)}_f1.png"
    png = heatmap_png(
        matrix, [s.model for s in scored], values, f"{spec.name}: macro-F1 per {column}", column, "model"
    )
    atomic_write_bytes(out_dir / PLOTS_DIR / name, png)
    seeds = sorted({s.seed for s in scored})
    return [
        f"## Macro-F1 per {escape(column)}",
        "",
        f"Each model's run on the whole train split (seed {', '.join(map(str, seeds))}), scored separately on "
        f"each value of `{column}` in the {spec.eval_split} split. Brackets: 95% percentile bootstrap interval "
        "(1,000 resamples of the group's examples). Intervals that overlap do not separate two groups or models.",
        "",
        tabulate(table, headers=header, tablefmt="github", disable_numparse=True),
        "",
        f"![macro-F1 per {column}]({PLOTS_DIR}/{name})",
    ]


# --------------------------------------------------------------------------------------------------
# Transfer matrix
# --------------------------------------------------------------------------------------------------


def _variant_filter(runs: RunSet, variant: str) -> dict[str, list[str]] | None:
    """The exact train filter of a variant, as its runs recorded it."""
    for run in runs.runs(variant):
        found = run.result.train_filter or (run.result.data.train_filter if run.result.data else None)
        if found:
            return {str(k): sorted(map(str, v)) for k, v in found.items()}
    return None


def transfer_matrices(
    runs: RunSet, spec: BenchmarkSpec, column: str, n_boot: int = 1000
) -> dict[str, dict[str, RunScores]]:
    """``{model: {train row: RunScores}}`` for runs trained on subsets defined by ``column`` alone.

    The row ``all`` is the model's run on the whole train split; the other rows are the stored
    filtered runs (``en``, or ``en+fr`` for a filter with several values). Only models with at least
    one filtered run appear.
    """
    rows: dict[str, str | None] = {}
    for variant in runs.variants():
        found = _variant_filter(runs, variant)
        if found and list(found) == [column]:
            rows["+".join(found[column])] = variant
    if not rows:
        return {}
    out: dict[str, dict[str, RunScores]] = {}
    for row, variant in rows.items():
        for model, run in _first_completed(runs, variant).items():
            scores = run_scores(run, column, spec.num_labels, n_boot)
            if scores is not None:
                out.setdefault(model, {})[row] = scores
    for model, run in _first_completed(runs).items():
        if model in out:
            scores = run_scores(run, column, spec.num_labels, n_boot)
            if scores is not None:
                out[model][ALL_ROW] = scores
    return out


def _row_order(rows) -> list[str]:
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


def transfer_section(runs: RunSet, spec: BenchmarkSpec, column: str, out_dir: Path) -> list[str]:
    """Markdown lines with one train x test table and heatmap per model; empty when no filtered run exists."""
    matrices = transfer_matrices(runs, spec, column)
    if not matrices:
        return []
    values = sorted({v for m in matrices.values() for s in m.values() for v in s.cells})
    every = [
        c.point
        for m in matrices.values()
        for s in m.values()
        for c in s.cells.values()
        if math.isfinite(c.point)
    ]
    # One colour scale for every model's heatmap, so colours compare across models.
    vmin, vmax = (min(every), max(every)) if every else (None, None)
    lines = [
        f"## Cross-{escape(column)} transfer (train {escape(column)} x test {escape(column)})",
        "",
        f"Rows: what the model was trained on (`{ALL_ROW}` = the whole train split; otherwise only the rows of that "
        f"`{column}`, from `--transfer-matrix {column}` or `--train-filter {column}=V`). Columns: the {column} it is "
        f"tested on. The framed diagonal is in-{column} training; off the diagonal is zero-shot transfer. "
        "Cells: macro-F1 [95% bootstrap interval]. Each row is one run (the lowest completed seed) under the same "
        "budget profile; `train rows` says how much data the row had, since one value alone is a smaller split.",
    ]
    for model in sorted(matrices):
        matrix = matrices[model]
        order = _row_order(matrix)
        table = []
        for row in order:
            s = matrix[row]
            points = [s.cells[v].point for v in values if v in s.cells]
            table.append(
                [
                    escape(row),
                    s.train_rows if s.train_rows is not None else "?",
                    *[_cell_text(s.cells.get(v)) for v in values],
                    f"{np.mean(points):.3f}" if points else "n/a",
                ]
            )
        grid = np.array(
            [[matrix[r].cells[v].point if v in matrix[r].cells else np.nan for v in values] for r in order]
        )
        outline = [(i, values.index(r)) for i, r in enumerate(order) if r in values]
        name = f"transfer_{_file_part(column)}_{_file_part(model)}.png"
        png = heatmap_png(
            grid,
            order,
            values,
            f"{model}: train {column} x test {column} (macro-F1)",
            f"test {column}",
            f"train {column}",
            vmin,
            vmax,
            outline,
            rule_below_first=order[0] == ALL_ROW,
        )
        atomic_write_bytes(out_dir / PLOTS_DIR / name, png)
        summary = transfer_summary(matrix)
        said = []
        if math.isfinite(summary["in_group"]):
            said.append(f"in-{column} (diagonal) mean {summary['in_group']:.3f}")
        if math.isfinite(summary["zero_shot"]):
            said.append(f"zero-shot (off-diagonal) mean {summary['zero_shot']:.3f}")
        if math.isfinite(summary["gap"]):
            said.append(f"transfer gap {summary['gap']:.3f}")
        if "all" in summary:
            said.append(f"trained on all, mean over {column} {summary['all']:.3f}")
        lines += [
            "",
            f"### {model}",
            "",
            tabulate(
                table,
                headers=["train / test", "train rows", *[escape(v) for v in values], "mean"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
            ("Summary: " + "; ".join(said) + ".") if said else "",
            "",
            f"![{model} transfer matrix]({PLOTS_DIR}/{name})",
        ]
    return lines


def report_sections(
    runs: RunSet, spec: BenchmarkSpec, out_dir: Path, model_order: list[str] | None = None
) -> list[str]:
    """Every group-column section of a leaderboard: per-group tables, then transfer matrices.

    Args:
        runs: the configuration's runs, read once (``harness.report.board.RunSet``).
        spec: the benchmark (its ``group_columns`` say which sections exist).
        out_dir: ``<results>/<benchmark>``; heatmaps go to its ``plots/`` folder, linked relatively.
        model_order: leaderboard order of the models (others follow alphabetically).

    Returns:
        Markdown lines, each section preceded by a blank line; empty when the benchmark has no group columns.
    """
    lines: list[str] = []
    for column in spec.group_columns:
        section = per_group_section(runs, spec, column, out_dir, model_order)
        if section:
            lines += ["", *section]
    for column in spec.group_columns:
        section = transfer_section(runs, spec, column, out_dir)
        if section:
            lines += ["", *section]
    return lines
