"""Suites: several benchmarks run by one command, and one summary leaderboard across them.

A suite is a comma list (``--benchmark sst5,ag_news --data-root DATA``) or a YAML file (``--suite NAME|PATH``),
resolved by :mod:`harness.config.suites`. Each benchmark runs through :func:`harness.pipeline.run` with the same
models, budget profile and limits, exactly as ``--benchmark NAME`` alone would (same store, same skipping of
finished runs); a benchmark that fails (its data cannot be read, an unexpected error) is recorded and the next
one runs. The summary reads each benchmark's :class:`~harness.report.board.Leaderboard` of the configuration
just run, once, ranks the models across them (:mod:`harness.report.ranks`) and writes
``<results>/suites/<suite>/summary.md`` with ``summary.csv``, ``summary.json`` and ``summary.png``:

- per-benchmark score of every model on that benchmark's main metric (the numbers of its leaderboard, which the
  Benchmarks table names) and its rank there;
- the mean rank over benchmarks, with a 95% interval from a bootstrap over each benchmark's test examples
  (:func:`~harness.report.ranks.rank_resamples`), and the best and worst rank;
- the mean cost: batch-1 p50 latency, training time and peak memory.

The summary's sections are :mod:`harness.report.document` sections, written by the leaderboard's renderer.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config.options import RunOptions
from harness.config.registry import default_registry_path, load_registry, select_models
from harness.config.suites import SUITES_DIR, Suite, SuiteMember, resolve_suite, wants_suite  # noqa: F401 (commands)
from harness.core.errors import HarnessInputError
from harness.core.escape import escape, figure_text
from harness.metrics.columns import columns as metric_columns
from harness.models import check_entries
from harness.report import markdown
from harness.report.board import Leaderboard
from harness.report.cells import fmt, rank
from harness.report.document import BulletList, Figure, Paragraph, Section, Table
from harness.report.ranks import N_BOOT, summarize

SUMMARY_FILES = ("summary.md", "summary.csv", "summary.json", "summary.png")
SUMMARY_PAGE = "summary.html"  # beside them when plotly is installed

log = logging.getLogger("harness")


# ----- running ----------------------------------------------------------------------------------------------


@dataclass
class BenchmarkOutcome:
    """What became of one benchmark of the suite."""

    name: str
    data_dir: Path | None
    configuration: str | None = None
    board: Leaderboard | None = None
    failed_runs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    declined: str | None = None  # the user stopped the suite at a time forecast in this benchmark
    seconds: float = 0.0
    leaderboard: Path | None = None  # the configuration's leaderboard.md in the store

    @property
    def ran(self) -> bool:
        return self.board is not None


@dataclass
class SuiteSummary:
    """The suite's outcome: one entry per benchmark, the summary table and where it was written."""

    suite: Suite
    models: list[str]
    outcomes: list[BenchmarkOutcome]
    table: pd.DataFrame
    path: Path | None = None
    write_error: str | None = None

    @property
    def ran(self) -> list[BenchmarkOutcome]:
        return [o for o in self.outcomes if o.ran]

    @property
    def failed(self) -> list[str]:
        """One line per problem: benchmarks that did not run, failed runs, a summary that was not written."""
        out = [f"benchmark {o.name}: {o.error}" for o in self.outcomes if o.error]
        out += [f"{o.name}: {label}" for o in self.outcomes for label in o.failed_runs]
        out += [f"{o.name}: stopped, {o.declined}" for o in self.outcomes if o.declined]
        if self.write_error:
            out.append(f"summary: {self.write_error}")
        return out


def model_names(options: RunOptions) -> list[str]:
    """The models a run command selects, validated now: a misspelt name stops the suite before it starts."""
    registry_path = options.registry or default_registry_path()
    selected, entries = options.split_models()
    names = []
    if selected or not entries:
        chosen = select_models(load_registry(registry_path), selected or "all", registry_path)
        check_entries(chosen, registry_path)
        names = [m.name for m in chosen]
    check_entries(entries)
    return names + [m.name for m in entries if m.name not in names]


def run_command(options: RunOptions) -> SuiteSummary:
    """The suite the options name (``suite``, or a comma list of benchmarks), run and summarised."""
    if options.transfer_matrix:
        raise HarnessInputError("--transfer-matrix", "runs on one benchmark", "drop it, or run the benchmarks apart")
    members = resolve_suite(suite=options.suite, benchmark=options.benchmark, data_root=options.data_root,
                            data_dir=options.data_dir, benchmarks_dir=options.benchmarks_dir)
    return run_suite(members, options)


def _check(suite: Suite, config: RunOptions) -> None:
    """What would stop every benchmark, refused before any training: the budget profile (the seeds are checked
    with the other options, by RunOptions)."""
    for member in suite.members:
        budget = config.budget or member.spec.default_budget
        if budget not in member.spec.budgets:
            raise HarnessInputError(
                f"--budget '{budget}'",
                f"not a budget of benchmark {member.spec.name} (suite {suite.name})",
                f"choose a profile every benchmark has: {sorted(_common_budgets(suite))}",
            )


def _run_member(member: SuiteMember, config: RunOptions, store, answer_file: Path) -> BenchmarkOutcome:
    """One benchmark through the pipeline; a failure is recorded in the outcome, never raised."""
    from harness import pipeline

    outcome = BenchmarkOutcome(name=member.spec.name, data_dir=member.data_dir)
    start = time.perf_counter()
    try:
        member_options = config.model_copy(update={"benchmark": member.benchmark, "data_dir": member.data_dir})
        summary = pipeline.run(member_options, answer_file)
        outcome.configuration = summary.configuration
        outcome.failed_runs = dict(summary.failed)
        outcome.declined = summary.declined
        if pipeline.is_main_process():
            # The leaderboard the benchmark's report was just drawn from, or read once if that failed.
            outcome.board = summary.board or Leaderboard.from_store(store, member.spec, summary.configuration)
            outcome.leaderboard = store.config_dir(member.spec.name, summary.configuration) / "leaderboard.md"
    except HarnessInputError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - one benchmark's failure must not lose the others
        outcome.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _run_members(suite: Suite, config: RunOptions, store, answer_file: Path) -> list[BenchmarkOutcome]:
    outcomes = []
    for i, member in enumerate(suite.members, 1):
        where = f"data {member.data_dir}" if member.data_dir else "data from the benchmark's own source"
        _say(config, f"=== benchmark {i}/{len(suite.members)}: {member.spec.name} ({where}) ===")
        outcome = _run_member(member, config, store, answer_file)
        if outcome.error:
            _say(config, f"benchmark {member.spec.name} FAILED after {outcome.seconds:.1f}s: {outcome.error}", warn=True)
        outcomes.append(outcome)
        if outcome.declined:
            _say(config, f"stopped at benchmark {member.spec.name}: {outcome.declined}; the rest of the suite is not run",
                 warn=True)
            break
    return outcomes


def run_suite(suite: Suite, config: RunOptions) -> SuiteSummary:
    """Run every benchmark of ``suite`` with the options of ``config``, then summarise.

    Problems with the suite, its benchmarks' YAML, the models or the budget stop everything before any
    training (:class:`HarnessInputError`); a benchmark that fails while it runs is recorded and the next one
    runs.
    """
    from harness import pipeline
    from harness.store.results_store import ResultsStore

    models = model_names(config)
    _check(suite, config)
    store = ResultsStore(config.results_dir)
    _say(
        config,
        f"suite {suite.name}: {len(suite.members)} benchmarks ({', '.join(suite.names)}), "
        f"{len(models)} model(s): {', '.join(models)}",
    )
    # One answer to the time question for the whole suite: asked at most once, whichever benchmark asks.
    scratch = tempfile.TemporaryDirectory(prefix="textclf-bench-suite-")
    outcomes = _run_members(suite, config, store, Path(scratch.name) / "answer")
    scratch.cleanup()
    table = summarize({o.name: o.board for o in outcomes if o.ran}, models)
    result = SuiteSummary(suite=suite, models=models, outcomes=outcomes, table=table)
    if pipeline.is_main_process():
        try:
            result.path = write_summary(result, store.root / SUITES_DIR / suite.name)
            _say(config, f"suite summary: {result.path}")
        except OSError as exc:
            result.write_error = f"could not write the summary ({exc.strerror or exc})"
            _say(config, result.write_error, warn=True)
    return result


def _common_budgets(suite: Suite) -> set[str]:
    sets = [set(m.spec.budgets) for m in suite.members]
    return set.intersection(*sets) if sets else set()


def _say(config, message: str, warn: bool = False) -> None:
    from harness.pipeline import is_main_process

    if is_main_process() and (warn or not config.quiet):
        (log.warning if warn else log.info)(message)


# ----- the summary's sections -------------------------------------------------------------------------------


def summary_sections(summary: SuiteSummary, out_dir: Path, figure: str | None) -> list[Section]:
    """Every section of summary.md; every name, description and message goes through :func:`escape`."""
    ran, table = summary.ran, summary.table
    sections = [_title(summary), Section("Benchmarks", [_benchmarks_table(summary, out_dir)])]
    if ran and len(table):
        sections.append(Section("Models across benchmarks", [_quality_table(table, ran)]))
        sections.append(Section("Cost (mean over benchmarks)", [_cost_table(table, len(ran))]))
    if summary.failed:
        sections.append(Section("Failures", [BulletList([escape(p, 400) for p in summary.failed])]))
    if figure:
        caption = "Mean rank with its interval, and each model's macro-F1 distance from the best per benchmark"
        sections.append(Section("Plot", [Figure(figure, caption)]))
    return sections


def _title(summary: SuiteSummary) -> Section:
    suite = summary.suite
    text = (
        f"Models: {', '.join(escape(m) for m in summary.models)}. Every benchmark ran with the same options in one "
        "command; each has its own leaderboard (linked below) with intervals, per-class scores and cost."
    )
    devices = sorted({r.device.device_name for o in summary.ran for r in o.board.completed_results if r.device is not None})
    if devices:
        text += f"\nMeasured on: {', '.join(escape(d) for d in devices)}."
    blocks = ([Paragraph(escape(suite.description))] if suite.description else []) + [Paragraph(text)]
    return Section(f"Suite {escape(suite.name)}: {len(suite.members)} benchmarks", blocks, level=1)


def _benchmark_row(outcome: BenchmarkOutcome, out_dir: Path) -> list[str]:
    if not outcome.ran:
        return [escape(outcome.name), "", "", "", "", "", "", f"FAILED: {escape(outcome.error, 300)}",
                f"{outcome.seconds:.0f}"]
    board = outcome.board
    link = os.path.relpath(outcome.leaderboard, out_dir).replace(os.sep, "/") if outcome.leaderboard else None
    first = board.completed_results[0] if board.completed_results else None
    rows = f"{first.data.train_rows:,} / {first.data.eval_rows:,}" if first and first.data else "n/a"
    status = "ran" + (f", {len(outcome.failed_runs)} failed run(s)" if outcome.failed_runs else "")
    label = escape(board.configuration.label)
    return [
        escape(outcome.name), str(board.spec.num_labels), f"{escape(board.spec.eval_split)}", _ranked_by(board), rows,
        escape(board.configuration.describe()), f"[{label}]({link})" if link else label, status,
        f"{outcome.seconds:.0f}",
    ]  # fmt: skip


def _ranked_by(board: Leaderboard) -> str:
    """The benchmark's main metric, as the summary names it (its direction when lower is better)."""
    main = board.main
    return escape(main.label) + ("" if main.higher_is_better else " (lower is better)")


def _benchmarks_table(summary: SuiteSummary, out_dir: Path) -> Table:
    columns = ["benchmark", "classes", "scored on", "ranked by", "train / eval rows", "configuration", "leaderboard",
               "status", "seconds"]
    return Table(columns, [_benchmark_row(o, out_dir) for o in summary.outcomes])


COST_CAPTION = (
    "Mean over the benchmarks each model completed of that benchmark's mean over seeds: batch-1 end-to-end "
    "latency p50 (raw text in, probabilities out), training wall time, and the peak resident memory of the "
    "model's own process over training and inference (peak CUDA memory allocated, on a GPU). Latency depends on "
    "each benchmark's text lengths and training time on its rows and epochs: compare models within a row of "
    "benchmarks, not with other suites."
)


def _rank_caption(n_benchmarks: int) -> str:
    return (
        f"Each cell: the benchmark's main metric (the Benchmarks table's _ranked by_; its leaderboard's number: mean "
        f"over seeds) and, in brackets, the model's rank there by it (1 = best; ties share the mean of their places; "
        f"a model that failed or did "
        f"not run there takes the last places). Mean rank: the mean of those ranks over the {n_benchmarks} "
        f"benchmark(s) that ran; the table is sorted by it. 95% interval: percentile bootstrap over test examples "
        f"({N_BOOT:,} resamples): each resample redraws every benchmark's test set with replacement, the same draw "
        f"for every model and seed, recomputes each score, the ranks and their mean (a main metric without an "
        f"interval function, such as an extra metric, keeps its score on every resample). It covers the sampling of "
        f"these test sets, not the choice of benchmarks; best–worst shows how far the rank moves between "
        f"benchmarks. Mean macro-F1: over the benchmarks the model completed (how many: the last column)."
    )


def _span(rec) -> str:
    if rec["best_rank"] == rec["worst_rank"]:
        return rank(rec["best_rank"])
    return f"{rank(rec['best_rank'])}–{rank(rec['worst_rank'])}"


def _quality_table(table: pd.DataFrame, ran: list[BenchmarkOutcome]) -> Table:
    rows = []
    for _, rec in table.iterrows():
        cells = [
            escape(rec["model"]),
            f"{fmt(rec['mean_rank'], 2)} [{fmt(rec['mean_rank_low'], 2)}, {fmt(rec['mean_rank_high'], 2)}]",
            _span(rec),
            *(fmt(rec[f"mean_{column.name}"], column.digits) for column in metric_columns("suite")),
        ]
        for outcome in ran:
            score, place = rec[f"score[{outcome.name}]"], rec[f"rank[{outcome.name}]"]
            digits = outcome.board.main.digits
            cells.append(f"{'failed' if np.isnan(score) else fmt(score, digits)} ({rank(place)})")
        cells.append(f"{int(rec['benchmarks_completed'])}/{len(ran)}")
        rows.append(cells)
    columns = ["model", "mean rank [95% interval]", "best–worst", *(f"mean {column.label}" for column in metric_columns("suite")),
               *(escape(o.name) for o in ran), "completed"]
    return Table(columns, rows, notes=_rank_caption(len(ran)))


def _cost_table(table: pd.DataFrame, n_benchmarks: int) -> Table:
    cuda = table["peak_cuda_mib"].notna().any()
    columns = ["model", "batch-1 p50 ms", "train s", "peak RSS MiB", *(["peak CUDA MiB"] if cuda else []), "benchmarks"]
    rows = []
    for _, rec in table.iterrows():
        cells = [escape(rec["model"]), fmt(rec["latency_p50_ms"], 2), fmt(rec["train_seconds"], 1),
                 fmt(rec["peak_rss_mib"], 0)]
        if cuda:
            cells.append(fmt(rec["peak_cuda_mib"], 0))
        cells.append(f"{int(rec['benchmarks_completed'])}/{n_benchmarks}")
        rows.append(cells)
    return Table(columns, rows, notes=COST_CAPTION)


# ----- the figure and the files -----------------------------------------------------------------------------


def summary_figure(table: pd.DataFrame, benchmarks: list[str]):
    """Two panels: each model's mean rank with its 95% interval, and its macro-F1 gap to the best per benchmark.

    Returns a matplotlib Figure, or None with no model and benchmark to draw.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if table.empty or not benchmarks or "mean_rank" not in table:
        return None
    models = list(table["model"])
    n_models = len(models)
    cmap = matplotlib.colormaps["tab10" if n_models <= 10 else "tab20"]
    colors = {m: cmap(i % cmap.N) for i, m in enumerate(models)}
    fig = Figure(figsize=(6.0 + 0.9 * len(benchmarks), max(3.2, 1.4 + 0.42 * n_models)), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1.0, max(1.2, 0.45 * len(benchmarks))])

    y = np.arange(n_models)[::-1]  # best on top
    mean, low, high = (
        table[c].to_numpy(dtype=float) for c in ("mean_rank", "mean_rank_low", "mean_rank_high")
    )
    for k, model in enumerate(models):
        left.errorbar(
            mean[k],
            y[k],
            xerr=[[mean[k] - low[k]], [high[k] - mean[k]]],
            fmt="o",
            color=colors[model],
            capsize=4,
            markersize=6,
        )
    left.set_yticks(y, [figure_text(m) for m in models])
    left.set_xlim(0.5, n_models + 0.5)
    left.set_ylim(-0.6, n_models - 0.4)
    left.set_xticks(np.arange(1, n_models + 1))
    left.set_xlabel("mean rank (1 = best), 95% interval")
    left.grid(axis="x", alpha=0.3)
    left.set_title("Mean rank over benchmarks")

    # Benchmarks differ far more in difficulty than models do on one benchmark: on a shared macro-F1 axis the
    # models' gaps vanish. Each point is the model's distance from the best model on that benchmark.
    x = np.arange(len(benchmarks))
    f1 = table[[f"f1_macro[{b}]" for b in benchmarks]].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a benchmark no model completed: all-nan column
        gap = f1 - np.nanmax(f1, axis=0)
    width = min(0.6, 0.12 * n_models)
    offsets = np.linspace(-width / 2, width / 2, n_models) if n_models > 1 else np.zeros(1)
    for k, model in enumerate(models):
        right.plot(x + offsets[k], gap[k], marker="o", linestyle="none", color=colors[model], label=figure_text(model))
    right.axhline(0.0, color="0.6", linewidth=0.8)
    right.set_xticks(
        x,
        [figure_text(b) for b in benchmarks],
        rotation=20 if len(benchmarks) > 3 else 0,
        ha="right" if len(benchmarks) > 3 else "center",
    )
    right.set_xlim(-0.5, len(benchmarks) - 0.5)
    finite = gap[np.isfinite(gap)]
    lowest = float(finite.min()) if finite.size else 0.0
    span = max(-lowest, 0.01)
    right.set_ylim(lowest - 0.12 * span, 0.12 * span)
    right.set_ylabel("macro-F1 − best on the benchmark")
    right.grid(axis="y", alpha=0.3)
    right.set_title("Distance from the best model, per benchmark")
    right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _payload(summary: SuiteSummary) -> dict:
    return {
        "suite": summary.suite.name,
        "description": summary.suite.description,
        "models": summary.models,
        "n_boot": N_BOOT,
        "benchmarks": [
            {
                "benchmark": o.name,
                "data_dir": str(o.data_dir) if o.data_dir else None,
                "configuration": o.configuration,
                "ranked_by": o.board.main.name if o.ran else None,
                "status": "ran" if o.ran else "failed",
                "error": o.error,
                "failed_runs": o.failed_runs,
                "seconds": round(o.seconds, 3),
            }
            for o in summary.outcomes
        ],
        "rows": json.loads(summary.table.to_json(orient="records")),
    }


def render_markdown(summary: SuiteSummary, out_dir: Path, figure: str | None) -> str:
    """The summary's markdown (``figure``: the relative path of summary.png, or None)."""
    return markdown.render(summary_sections(summary, out_dir, figure))


def write_summary(summary: SuiteSummary, out_dir: Path) -> Path:
    """Write summary.md, .csv, .json and .png (atomically) into ``out_dir``; returns the markdown's path."""
    from harness.report import figures as plots
    from harness.store.results_store import atomic_write_bytes, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "summary.csv", summary.table.to_csv(index=False))
    atomic_write_text(out_dir / "summary.json", json.dumps(_payload(summary), indent=2) + "\n")
    fig = summary_figure(summary.table, [o.name for o in summary.ran])
    figure, png = None, None
    if fig is not None:
        png = plots.to_png(fig)
        atomic_write_bytes(out_dir / "summary.png", png)
        figure = "summary.png"
    else:
        (out_dir / "summary.png").unlink(missing_ok=True)  # one from an earlier run would not match this summary
    path = out_dir / "summary.md"
    atomic_write_text(path, render_markdown(summary, out_dir, figure))
    page = render_page(summary, out_dir, figure, png)
    if page is None:
        (out_dir / SUMMARY_PAGE).unlink(missing_ok=True)
    else:
        atomic_write_text(out_dir / SUMMARY_PAGE, page)
    return path


def render_page(summary: SuiteSummary, out_dir: Path, figure: str | None, png: bytes | None) -> str | None:
    """summary.html: the summary's sections as a page linking to each benchmark's page (None without plotly)."""
    from harness.report import html

    try:
        return html.render(summary_sections(summary, out_dir, figure), images={figure: png} if figure else {},
                           links={"leaderboard.md": "leaderboard.html"})
    except ImportError as exc:
        log.warning(f"summary.html not written: {exc} (pip install plotly)")
        return None
