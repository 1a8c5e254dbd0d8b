"""Renderers of a :class:`~harness.report.board.Leaderboard`: markdown, CSV/JSON, plots and the error analysis.

Nothing here reads the store: ``write_report`` builds the leaderboard object once (``Leaderboard.from_store``)
and every file is drawn from it. Each configuration's report lands in its own folder of the store; the
configuration the last command ran is also copied to ``<results>/<benchmark>/``, where users look first.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
from tabulate import tabulate

from harness.config.schema import BenchmarkSpec, Budget
from harness.core.errors import HarnessInputError
from harness.core.escape import escape
from harness.metrics.columns import MetricColumn, columns
from harness.report import analysis, groups
from harness.report.board import Leaderboard, ModelRow
from harness.report.records import get as _get
from harness.store.results import RunResult
from harness.store.results_store import ResultsStore, atomic_write_bytes, atomic_write_text

PLOTS_DIR = "plots"
ERRORS_FILE = "errors.md"
LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.csv", "leaderboard.json", ERRORS_FILE)


# ----- formatting ------------------------------------------------------------------------------------------


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _mean_std(values: list, digits: int = 4) -> str:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return _fmt(vals[0], digits)
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def _count(value) -> str:
    """A parameter count people can read: 43.7k, 22.7M."""
    if value is None:
        return "n/a"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return str(int(value))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _p(value, floor: float | None = None) -> str:
    """A p-value; at the resampling floor it says so instead of printing the floor as a finding."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if floor is not None and value <= floor * 1.0000001:
        return f"<{floor * 1.0001:.0e} (resampling floor)"
    if value < 1e-4:
        return f"{value:.1e}"
    return f"{value:.4f}" if value < 0.001 else f"{value:.3f}"


# ----- header and warnings ----------------------------------------------------------------------------------


def budget_text(budget: Budget, fields: list[str] | None = None) -> str:
    keys = ("train_examples", "test_examples", "epochs", "max_steps", "max_seconds", "max_length", "batch_size",
            "eval_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_ratio",
            "precision")
    values = budget.model_dump()
    return ", ".join(f"{k}={values[k]}" for k in keys if values.get(k) is not None and (fields is None or k in fields))


def comparison_warnings(board: Leaderboard) -> list[str]:
    """What differs between the rows, computed from what actually ran (never from labels)."""
    results = board.completed_results
    warnings = []

    def differing(name: str, value_of, among=None) -> None:
        seen: dict = {}
        for r in among if among is not None else results:
            seen.setdefault(value_of(r), []).append(f"{r.model}/seed {r.seed}")
        if len(seen) > 1:
            parts = "; ".join(f"{escape(k)}: {', '.join(v)}" for k, v in sorted(seen.items(), key=lambda kv: str(kv[0])))
            warnings.append(f"rows differ in {name} ({parts}); compare with care")

    differing("train rows", lambda r: r.data.train_rows)
    differing("test rows", lambda r: r.data.eval_rows)
    differing("device", lambda r: _get(r, "device", "device_name") or "?")
    # TF-IDF has no training precision; among the transformers a mix (bf16 here, fp32 there) is worth a warning.
    differing("training precision", lambda r: r.precision or "?", [r for r in results if r.family == "transformer"])
    differing("harness version", lambda r: _get(r, "environment", "harness_source_sha256") or "?")
    overridable = set(Budget.model_fields) - {"learning_rate", "weight_decay", "warmup_ratio", "seed"}

    def shared_budget(r: RunResult) -> str:
        used = set(r.budget_fields_used or overridable) & overridable
        return budget_text(r.budget, sorted(used)) if r.budget else "?"

    if len({shared_budget(r) for r in results if r.family == "transformer"}) > 1:
        warnings.append("transformer rows trained under different budget values; compare with care")
    return warnings


def _sample_note(spec: BenchmarkSpec, train_rows, eval_rows) -> str:
    official = spec.official_sizes
    notes = []
    for split, rows in (("train", train_rows), (spec.eval_split, eval_rows)):
        full = official.get(split)
        if full and rows is not None and rows < full:
            notes.append(f"{split}: a sample of {rows:,} of {full:,} rows")
    return f" ({'; '.join(notes)})" if notes else ""


def header_lines(board: Leaderboard) -> list[str]:
    spec, configuration = board.spec, board.configuration
    results = board.completed_results
    devices = sorted({_get(r, "device", "device_name") or "?" for r in results})
    data_kinds = sorted({r.data.kind for r in results})
    train_rows = sorted({r.data.train_rows for r in results})
    eval_rows = sorted({r.data.eval_rows for r in results})
    train_text = ", ".join(f"{n:,}" for n in train_rows) or "?"
    eval_text = ", ".join(f"{n:,}" for n in eval_rows) or "?"
    lines = [
        f"# Leaderboard: {escape(spec.name)}",
        "",
        escape(spec.description.strip()),
        "",
        f"- **Configuration**: `{configuration.label}`: {configuration.describe()}",
        f"- **Shared budget** (every model; a row's own overrides are in its notes): {budget_text(configuration.budget)}",
        f"- **Data**: {train_text} train rows, {eval_text} rows of the '{spec.eval_split}' split "
        f"({', '.join(data_kinds) or '?'} source)"
        + (_sample_note(spec, train_rows[0], eval_rows[0]) if len(train_rows) == 1 and len(eval_rows) == 1 else ""),
        f"- **Device**: {', '.join(devices) or 'n/a'} (latency and throughput are only comparable on the same device)",
    ]
    notes = sorted({note for r in results if (note := getattr(r.data, "note", None))})
    if any(kind.startswith("embedded") for kind in data_kinds):
        notes = notes or ["scored on the small sample shipped with the harness: a smoke test, not the benchmark's "
                          "published numbers"]
    for note in notes:
        lines.append(f"- **Note**: {escape(note)}")
    for warning in comparison_warnings(board):
        lines.append(f"- **Warning**: {warning}")
    versions = sorted({(_get(r, "environment", "harness_version"), _get(r, "environment", "harness_source_sha256"),
                        _get(r, "environment", "git_commit"), _get(r, "environment", "git_modified")) for r in results},
                      key=str)
    shown = []
    for version, source, commit, modified in versions:
        text = f"{version} (source {source or '?'}"
        if commit:
            text += f", commit {commit[:12]}" + (", harness code modified" if modified else "")
        shown.append(text + ")")
    lines.append(f"- **Harness**: {'; '.join(shown) or 'n/a'}")
    lines.append(
        "- Sorted by macro-F1 (mean over seeds when several). Latency: batch 1, raw text in, probabilities out, "
        "after warm-up. Peak RSS: the model's own process during training."
    )
    return lines


# ----- tables ----------------------------------------------------------------------------------------------


def _quality_cell(row: ModelRow, column: MetricColumn) -> str:
    digits = column.digits
    text = _mean_std([getattr(r.metrics, column.name) for r in row.results], digits)
    ci = _get(row.stats, "ci", column.name)
    if ci and math.isfinite(ci["low"]):
        text += f" [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"
    return text


def _vs_best_cell(row: ModelRow) -> str:
    versus = row.vs_best
    if versus == "leader":
        return "best"
    if not isinstance(versus, dict):
        return "n/a"
    boot = versus["paired_bootstrap"]
    return f"{'tied' if versus['tied'] else 'below'} (p {_p(boot['p_value'], boot.get('p_floor'))})"


def _notes(row: ModelRow) -> str:
    notes = []
    first = row.completed[0].result if row.completed else (row.failed[0].result if row.failed else None)
    if first and first.budget_overrides:
        notes.append("overrides: " + ", ".join(f"{k}={v}" for k, v in first.budget_overrides.items()))
    if row.identical_seeds:
        notes.append(row.seeds_text)
    if any(r.result.trust_remote_code for r in row.completed + row.failed):
        notes.append("trust_remote_code")
    if row.failed:
        errors = {f"{r.result.error.type}: {r.result.error.message}" for r in row.failed if r.result.error}
        notes.append("failed: " + "; ".join(escape(e, 160) for e in sorted(errors)))
    return "; ".join(notes)


def leaderboard_table(board: Leaderboard) -> str:
    header = [
        "rank", "model", "status", *(c.label for c in columns("table")), "vs best", "ECE", "Brier", "train s",
        "train samples/s", "p50 ms (b=1)", "p95 ms (b=1)", "eval samples/s", "peak RSS MiB", "params", "notes",
    ]
    table = []
    for rank, row in enumerate(board.rows, 1):
        results = row.results
        status = "ok" if row.completed and not row.failed else ("partial" if row.completed else "failed")
        if len(row.completed) > 1 and not row.identical_seeds:
            status += f" ({len(row.completed)} seeds)"
        peak = max((_get(r, "memory", "train", "rss_peak_bytes") or 0 for r in results), default=0)
        table.append(
            [
                rank if row.completed else "-",
                row.model,
                status,
                *(_quality_cell(row, c) if results else "n/a" for c in columns("table")),
                _vs_best_cell(row),
                _mean_std(_get(row.stats, "ece") or [], 3),
                _mean_std(_get(row.stats, "brier") or [], 3),
                _mean_std([_get(r, "training", "train_seconds") for r in results], 1),
                _mean_std([_get(r, "training", "samples_per_second") for r in results], 1),
                _mean_std([_get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in results], 2),
                _mean_std([_get(r, "inference", "latency_batch1_end_to_end", "p95_ms") for r in results], 2),
                _mean_std([_get(r, "inference", "throughput_samples_per_s") for r in results], 1),
                f"{peak / 2**20:,.0f}" if peak else "n/a",
                _count(_get(results[0], "model_info", "parameters")) if results else "n/a",
                _notes(row),
            ]
        )
    return tabulate(table, headers=header, tablefmt="github", disable_numparse=True)


def settings_table(board: Leaderboard) -> str:
    """What each model family actually used: its own settings and the budget fields it reads."""
    table = []
    for row in board.rows:
        run = (row.completed or row.failed)[0].result
        settings = ", ".join(f"{k}={v}" for k, v in run.model_settings.items() if v is not None)
        used = run.budget_fields_used
        budget = budget_text(run.budget, used) if run.budget else "n/a"
        if "seed" in used or not used:
            budget += ", seed (per run)"
        table.append([row.model, run.family or "?", escape(settings) or "n/a", budget])
    return tabulate(table, headers=["model", "family", "settings", "budget fields it uses"], tablefmt="github",
                    disable_numparse=True)


def truncation_table(board: Leaderboard) -> list[str]:
    """The share of texts each model's tokenizer cut at max_length, overall and per group value (eval split)."""
    rows = [row for row in board.rows if row.results and row.results[0].truncation is not None]
    if not rows:
        return []
    group_values: dict[str, list[str]] = {}
    for row in rows:
        for column, shares in row.results[0].truncation.eval.by_group.items():
            group_values.setdefault(column, sorted(set(group_values.get(column, [])) | set(shares)))
    header = ["model", "max_length", "train cut", f"{board.spec.eval_split} cut"]
    for column, values in group_values.items():
        header += [f"{escape(column)}={escape(v)}" for v in values]
    table = []
    for row in rows:
        t = row.results[0].truncation
        cells = [row.model, t.max_length if t.applies else "whole text", _pct(t.train.share), _pct(t.eval.share)]
        for column, values in group_values.items():
            cells += [_pct(t.eval.by_group.get(column, {}).get(v)) if t.applies else "0.0%" for v in values]
        table.append(cells)
    return [
        "",
        "## Truncation",
        "",
        "Share of texts longer than the model's max_length in its own tokenizer's tokens (special tokens "
        "included): the model never sees the rest. TF-IDF reads every text whole. Per-group columns are of the "
        f"{board.spec.eval_split} split.",
        "",
        tabulate(table, headers=header, tablefmt="github", disable_numparse=True),
    ]


def per_class_table(board: Leaderboard) -> str:
    names = board.spec.label_names
    table = [
        [row.model, *(_mean_std([r.metrics.per_class[n].f1 for r in row.results]) for n in names)]
        for row in board.rows
        if row.results
    ]
    return tabulate(table, headers=["model", *[f"F1 {escape(n)}" for n in names]], tablefmt="github",
                    disable_numparse=True)


def per_class_detail(board: Leaderboard) -> str:
    names = board.spec.label_names
    table = []
    for row in board.rows:
        for r in row.results[:1]:
            for k, name in enumerate(names):
                c = r.metrics.per_class[name]
                table.append([row.model, escape(name), _fmt(c.precision), _fmt(c.recall), _fmt(c.f1),
                              _fmt(r.metrics.roc_auc_per_class[k]), c.support])
    return tabulate(
        table, headers=["model", "class", "precision", "recall", "F1", "ROC-AUC (1-vs-rest)", "support"],
        tablefmt="github", disable_numparse=True,
    )


def cost_section(board: Leaderboard) -> list[str]:
    """The "Cost" table: latency percentiles, throughput, training speed, MFU, memory and size per model."""
    rows = [row for row in board.rows if row.results]
    if not rows:
        return []

    def cell(row: ModelRow, *path, digits: int = 1, scale: float = 1.0) -> str:
        values = [_get(r, *path) for r in row.results]
        return _mean_std([None if v is None else v * scale for v in values], digits)

    every = [r for row in rows for r in row.results]
    cuda = any(_get(r, "memory", p, "cuda_peak_allocated_bytes") is not None for r in every for p in ("train", "inference"))
    header = [
        "model", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p50 ms model-only", "eval samples/s",
        "train samples/s", "train real tokens/s", "MFU %", "peak RSS train MiB", "peak RSS inference MiB",
    ]
    if cuda:
        header += ["CUDA alloc/reserved train MiB", "CUDA alloc/reserved inference MiB"]
    header += ["params", "size on disk MiB"]
    table = []
    for row in rows:
        cells = [
            row.model,
            *(cell(row, "inference", "latency_batch1_end_to_end", f"p{p}_ms", digits=2) for p in (50, 90, 95, 99)),
            cell(row, "inference", "latency_batch1_model_only", "p50_ms", digits=2),
            cell(row, "inference", "throughput_samples_per_s"),
            cell(row, "training", "samples_per_second"),
            cell(row, "training", "tokens_per_second", digits=0),
            cell(row, "training", "mfu", scale=100.0),
            cell(row, "memory", "train", "rss_peak_bytes", digits=0, scale=1 / 2**20),
            cell(row, "memory", "inference", "rss_peak_bytes", digits=0, scale=1 / 2**20),
        ]
        if cuda:
            for phase in ("train", "inference"):
                allocated = cell(row, "memory", phase, "cuda_peak_allocated_bytes", digits=0, scale=1 / 2**20)
                reserved = cell(row, "memory", phase, "cuda_peak_reserved_bytes", digits=0, scale=1 / 2**20)
                cells.append(f"{allocated} / {reserved}")
        cells += [
            _count(_get(row.results[0], "model_info", "parameters")),
            cell(row, "model_info", "size_on_disk_bytes", digits=1, scale=1 / 2**20),
        ]
        table.append(cells)
    first = every[0]
    latency = _get(first, "inference", "latency_batch1_end_to_end")
    threads = next(
        (t for r in every if (t := _get(r, "device", "threads") or {}).get("torch_intra_op") is not None),
        _get(first, "device", "threads") or {},
    )
    thread_text = ", ".join(
        f"{k}={v}" for k, v in (("torch intra-op", threads.get("torch_intra_op")), ("usable cores", threads.get("usable_cores")))
        if v is not None
    )
    caption = (
        f"Batch-1 latency over the same {_get(latency, 'repetitions') or '?'} test texts for every model after "
        f"{_get(latency, 'warmup') or '?'} untimed calls: end to end (raw text in, probabilities out, tokenisation "
        "included) and model-only (pre-tokenised forward pass; transformers only). Eval samples/s: the whole eval "
        f"split at batch {_get(first, 'inference', 'eval_batch_size') or '?'}, sorted by length, after one "
        "untimed batch. Train real tokens/s counts unpadded tokens. MFU: 6 x non-embedding parameters x real "
        "tokens / train time / the card's dense bf16 peak FLOP/s, whatever the training precision (n/a on CPU or an "
        "unlisted GPU). Params: weights "
        "of a transformer, coefficients of a linear model. Peak RSS and CUDA memory are reset between training "
        "and inference; each model runs in its own process."
        + (f" Threads: {thread_text}." if thread_text else "")
    )
    return ["", "## Cost", "", caption, "", tabulate(table, headers=header, tablefmt="github", disable_numparse=True)]


def paired_tests_table(board: Leaderboard) -> list[str]:
    rows = [row for row in board.rows[1:] if isinstance(row.vs_best, dict)]
    if not rows:
        return []
    table = []
    for row in rows:
        versus = row.vs_best
        boot = versus["paired_bootstrap"]
        mcnemar = versus["mcnemar"]
        table.append(
            [
                row.model,
                f"{boot['diff']:+.4f} [{boot['low']:+.4f}, {boot['high']:+.4f}]",
                _p(boot["p_value"], boot.get("p_floor")),
                "; ".join(f"{t['b']}/{t['c']}" for t in mcnemar),
                "; ".join(_p(t["p_value"]) for t in mcnemar),
                "tied" if versus["tied"] else "below",
                versus["n"],
            ]
        )
    leader = board.rows[0]
    seeds = len(leader.predictions)
    return [
        "",
        "## Paired tests against the best model (every seed)",
        "",
        f"Paired bootstrap ({board.n_boot:,} resamples of the same test examples, every seed of both models on each "
        "resample) of the difference in mean macro-F1; the smallest p it can show is about "
        f"{1 / (1 + board.n_boot):.0e}. McNemar: exact binomial test of the error rates for each seed pair (the i-th "
        f"seed of each model; the best model has {seeds} seed(s)), as 'only it right / only best right'. "
        "_tied_: bootstrap p >= 0.05, the data cannot separate it from the best model.",
        "",
        tabulate(
            table,
            headers=["model", "Δ macro-F1 vs best [95% CI]", "p (paired bootstrap)", "McNemar b/c per seed pair",
                     "p (McNemar, exact) per seed pair", "verdict", "examples"],
            tablefmt="github", disable_numparse=True,
        ),
    ]


def _invalid_section(board: Leaderboard) -> list[str]:
    if not board.runs.invalid:
        return []
    lines = ["", "## Runs that could not be read", "",
             "These stored runs do not validate and are left out of every table; a rerun of the same command redoes them.", ""]
    lines += [f"- `{escape(path.parent.name)}/{escape(path.name)}`: {escape(reason, 300)}" for path, reason in board.runs.invalid]
    return lines


def _configurations_section(board: Leaderboard) -> list[str]:
    if not board.other_configurations:
        return []
    lines = ["", "## Other configurations in this store", "",
             "Each has its own leaderboard; `textclf-bench report --benchmark "
             f"{board.spec.name} --configuration LABEL` rebuilds it.", ""]
    lines += [f"- [`{c.label}`](../{c.label}/leaderboard.md): {c.describe()}" for c in board.other_configurations]
    return lines


# ----- figures and files ------------------------------------------------------------------------------------


def _latency_points(board: Leaderboard) -> list[dict]:
    points = []
    for row in board.rows:
        latency = [v for r in row.results if (v := _get(r, "inference", "latency_batch1_end_to_end", "p50_ms"))]
        if not row.results or not latency:
            continue
        memory = [
            m for r in row.results
            if (m := _get(r, "memory", "inference", "cuda_peak_allocated_bytes") or _get(r, "memory", "inference", "rss_peak_bytes"))
        ]
        ci = _get(row.stats, "ci", "f1_macro") or {}
        points.append(
            {
                "model": row.model,
                "quality": row.f1_macro,
                "low": ci.get("low", float("nan")),
                "high": ci.get("high", float("nan")),
                "latency_ms": float(np.mean(latency)),
                "memory_mib": float(np.max(memory)) / 2**20 if memory else None,
            }
        )
    return points


def write_figures(out_dir: Path, board: Leaderboard) -> list[tuple[str, str]]:
    """Draw every figure there is data for into ``<out_dir>/plots``; returns (caption, relative path) pairs."""
    from harness.report import figures as plots

    names = board.spec.label_names
    done = [row for row in board.rows if row.results]
    first = board.first_predictions()
    per_class = None
    if done:
        f1 = [[[r.metrics.per_class[c].f1 for c in names] for r in row.results] for row in done]
        several = any(len(seeds) > 1 for seeds in f1)
        per_class = plots.per_class_f1(
            [row.model for row in done],
            names,
            np.array([np.mean(s, axis=0) for s in f1]),
            np.array([np.std(s, axis=0, ddof=1) if len(s) > 1 else np.zeros(len(names)) for s in f1]) if several else None,
        )
    curves = {row.model: [[dict(p) for p in (r.training.loss_curve or [])] for r in row.results] for row in done}
    figures = {
        "quality_vs_latency": ("Macro-F1 against batch-1 latency, Pareto front and memory", plots.quality_vs_latency(_latency_points(board))),
        "per_class_f1": ("Per-class F1", per_class),
        "roc_curves": ("ROC curves", plots.roc_curves(first, names)),
        "confusion_matrices": ("Confusion matrices", plots.confusion_grid(first, names)),
        "loss_curves": ("Training loss", plots.loss_curves(curves)),
        "reliability": ("Reliability diagram", plots.reliability_diagram(first)),
    }
    written = []
    for name, (caption, fig) in figures.items():
        path = out_dir / PLOTS_DIR / f"{name}.png"
        if fig is None:
            path.unlink(missing_ok=True)  # a figure from an earlier build would no longer match the store
            continue
        atomic_write_bytes(path, plots.to_png(fig))
        written.append((caption, f"{PLOTS_DIR}/{name}.png"))
    return written


def render_markdown(board: Leaderboard, figures: list[tuple[str, str]] | None, group_lines: list[str] | None = None) -> str:
    """The leaderboard's markdown; ``figures`` are (caption, relative path) pairs already written, or None."""
    lines = header_lines(board)
    lines += ["", "## Models", "", leaderboard_table(board)]
    lines += [
        "",
        "Quality cells: mean ± std over seeds, then [95% bootstrap CI of that mean over test examples "
        f"({board.n_boot:,} resamples; every seed kept on each resample)]; the std is the seed-to-seed spread. "
        "A model whose seeds gave identical predictions is shown as one run. _vs best_: paired bootstrap of mean "
        "macro-F1 against the first row over every seed; _tied_ when p >= 0.05. ECE: top-label expected "
        "calibration error (15 bins); Brier: multi-class (0 best, 2 worst).",
    ]
    if board.rows:
        lines += ["", "## Model settings", "", settings_table(board)]
    lines += truncation_table(board)
    lines += cost_section(board)
    if any(row.results for row in board.rows):
        lines += ["", "## Per-class F1", "", per_class_table(board)]
        lines += ["", "## Per-class precision, recall, F1 and ROC-AUC (first seed)", "", per_class_detail(board)]
    lines += group_lines or []
    lines += paired_tests_table(board)
    if figures:
        lines += ["", "## Plots", ""]
        for caption, relative in figures:
            lines += [f"### {caption}", "", f"![{caption}]({relative})", ""]
    if figures is not None:
        lines += [
            "",
            "## Error analysis",
            "",
            f"Most confident mistakes, error rate by input length and by group, and the examples on which models "
            f"disagree: [{ERRORS_FILE}]({ERRORS_FILE}).",
        ]
    lines += _invalid_section(board)
    lines += _configurations_section(board)
    return "\n".join(lines) + "\n"


def write_leaderboard(board: Leaderboard, out_dir: Path) -> Path:
    """Every file of one configuration's report, drawn from the leaderboard object."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = board.to_pandas()
    atomic_write_text(out_dir / "leaderboard.csv", frame.to_csv(index=False))
    payload = {
        "benchmark": board.spec.name,
        "configuration": board.configuration.model_dump(mode="json"),
        "rows": json.loads(frame.to_json(orient="records")),
    }
    atomic_write_text(out_dir / "leaderboard.json", json.dumps(payload, indent=2) + "\n")
    group_lines = groups.report_sections(board.runs, board.spec, out_dir, [row.model for row in board.rows])
    figures = write_figures(out_dir, board)
    atomic_write_text(
        out_dir / ERRORS_FILE,
        analysis.error_report(board.first_predictions(), board.eval_texts, board.spec.label_names, board.spec.name),
    )
    path = out_dir / "leaderboard.md"
    atomic_write_text(path, render_markdown(board, figures, group_lines))
    return path


def write_report(store: ResultsStore, spec: BenchmarkSpec, label: str | None = None) -> Path:
    """Rebuild a configuration's report in its folder and copy it to ``<results>/<benchmark>/``.

    Returns the path of the copy users read, ``<results>/<benchmark>/leaderboard.md``.
    """
    return publish(store, Leaderboard.from_store(store, spec, label))


class NothingToReport(HarnessInputError):
    """The configuration holds no run at all: its report would blank the leaderboard, so none is written."""


def publish(store: ResultsStore, board: Leaderboard) -> Path:
    """Write ``board`` into its configuration's folder and copy it to ``<results>/<benchmark>/``.

    A board without a single run (usable or not) is refused with :class:`NothingToReport`: an empty table
    never replaces a leaderboard.
    """
    spec = board.spec
    config_dir = store.config_dir(spec.name, board.configuration.label)
    if board.runs.empty:
        raise NothingToReport(
            str(config_dir), "holds no runs, so the leaderboard is left as it was",
            "run the benchmark to fill it, or report another configuration with --configuration LABEL",
        )
    write_leaderboard(board, config_dir)
    top = store.benchmark_dir(spec.name)
    for name in LEADERBOARD_FILES:
        text = (config_dir / name).read_text(encoding="utf-8")
        if name == "leaderboard.md":
            # The copy sits two folders up: links to sibling configurations go through configs/.
            text = text.replace("](../", "](configs/")
        atomic_write_text(top / name, text)
    plots_top = top / PLOTS_DIR
    if plots_top.is_dir():
        shutil.rmtree(plots_top)
    if (config_dir / PLOTS_DIR).is_dir():
        shutil.copytree(config_dir / PLOTS_DIR, plots_top)
    return top / "leaderboard.md"
