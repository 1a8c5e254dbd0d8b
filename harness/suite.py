"""Suites: several benchmarks run by one command, and one summary leaderboard across them.

A suite is a comma list (``--benchmark sst5,ag_news --data-root DATA``) or a YAML file (``--suite NAME|PATH``,
schema :class:`~harness.config.schema.SuiteSpec`). Each benchmark runs through :func:`harness.pipeline.run` with the
same models, budget profile and limits, exactly as ``--benchmark NAME`` alone would (same store, same
skipping of finished runs); a benchmark that fails (its data cannot be read, an unexpected error) is recorded
and the next one runs. The summary reads each benchmark's :class:`~harness.report.board.Leaderboard` of the
configuration just run, once, and writes ``<results>/suites/<suite>/summary.md`` with ``summary.csv``,
``summary.json`` and ``summary.png``:

- per-benchmark macro-F1 of every model (the numbers of that benchmark's leaderboard) and its rank there;
- the mean rank over benchmarks, with a 95% interval from a bootstrap over each benchmark's test examples
  (:func:`rank_resamples`), and the best and worst rank;
- the mean cost: batch-1 p50 latency, training time and peak memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError
from scipy.stats import rankdata
from tabulate import tabulate

from harness.config.registry import (
    benchmark_dirs,
    default_registry_path,
    load_benchmark,
    load_registry,
    select_models,
)
from harness.config.schema import SAFE_NAME, BenchmarkSpec, SuiteSpec, read_yaml, validation_error_line
from harness.core.errors import HarnessInputError
from harness.core.escape import escape, figure_text
from harness.metrics import stats
from harness.metrics.columns import columns as metric_columns
from harness.report import analysis
from harness.report.board import Leaderboard, ModelRow

SUITES_DIR = "suites"  # <results>/suites/<suite>/ and <benchmarks dir>/suites/<suite>.yaml
SUMMARY_FILES = ("summary.md", "summary.csv", "summary.json", "summary.png")
# Resamples of the mean-rank interval (as many as the leaderboards' own intervals), and a fixed seed.
N_BOOT = analysis.N_BOOT
_CHUNK = 250  # bootstrap rows drawn at once: bounds memory at about _CHUNK x (distinct patterns) x 8 bytes

log = logging.getLogger("harness")


# ----- what to run ------------------------------------------------------------------------------------------


@dataclass
class SuiteMember:
    """One benchmark of a suite, resolved: what to hand to the pipeline and where its data lies."""

    benchmark: str  # a benchmark name or a YAML path, as ``--benchmark`` takes it
    spec: BenchmarkSpec
    data_dir: Path | None


@dataclass
class Suite:
    name: str
    members: list[SuiteMember]
    description: str = ""
    source: Path | None = None  # the suite YAML, if any

    @property
    def names(self) -> list[str]:
        return [m.spec.name for m in self.members]


def wants_suite(benchmark: str | None, suite: str | None) -> bool:
    """Whether the command line asks for a suite: ``--suite``, or a comma list in ``--benchmark``."""
    return suite is not None or (benchmark is not None and "," in benchmark)


def find_suite_file(name_or_path: str, benchmarks_dir: Path | None = None) -> Path:
    """A suite YAML by path, or by name in ``<benchmarks dir>/suites/`` (the shipped ones included)."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise HarnessInputError(f"--suite '{name_or_path}'", "no such YAML file", "check the path")
        return candidate
    dirs = [d / SUITES_DIR for d in benchmark_dirs(benchmarks_dir)]
    for directory in dirs:
        if (directory / f"{name_or_path}.yaml").is_file():
            return directory / f"{name_or_path}.yaml"
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})
    raise HarnessInputError(
        f"--suite '{name_or_path}'",
        f"no such suite in {', '.join(map(str, dirs)) or 'any benchmarks folder'}",
        f"choose from {known} or pass a path to a suite YAML" if known else "pass a path to a suite YAML",
    )


def load_suite_file(path: Path) -> SuiteSpec:
    """Read and validate a suite YAML; any problem is one line naming the file, the entry and the field."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise HarnessInputError(
            str(path), "expected a mapping with 'name' and 'benchmarks'", "see benchmarks/suites/"
        )
    entries = raw.get("benchmarks") if isinstance(raw.get("benchmarks"), list) else []

    def entry_of(loc: list) -> str | None:
        if len(loc) >= 2 and loc[0] == "benchmarks" and isinstance(loc[1], int) and loc[1] < len(entries):
            item = entries[loc[1]]
            name = (
                item if isinstance(item, str) else item.get("benchmark") if isinstance(item, dict) else None
            )
            return f"benchmark '{name}'" if name else f"benchmarks[{loc[1]}]"
        return None

    try:
        return SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise validation_error_line(path, exc, entry_of, SuiteSpec) from None


def resolve_suite(
    *,
    suite: str | None,
    benchmark: str | None,
    data_root: Path | None,
    data_dir: Path | None,
    benchmarks_dir: Path | None = None,
) -> Suite:
    """The suite the command line names, every benchmark loaded and its data folder resolved.

    Data folders: ``--data-root`` (or the suite's ``data_root``, relative to the suite file) holds one folder
    per benchmark, named after it unless the suite entry gives ``data_dir`` (relative to the root, or to the
    suite file when there is no root). Without a root and without ``data_dir``, the data comes from the hub as
    for a single benchmark. ``--data-dir`` names one benchmark's files, so it does not apply to a suite.
    """
    if data_dir is not None:
        raise HarnessInputError(
            "--data-dir",
            "names one benchmark's files; a suite runs several",
            "pass --data-root DIR holding one folder per benchmark (e.g. DIR/sst5, DIR/ag_news)",
        )
    if suite is not None and benchmark is not None:
        raise HarnessInputError(
            "--suite", "cannot be combined with --benchmark", "list the benchmarks in the suite YAML"
        )
    root = Path(data_root).expanduser() if data_root is not None else None
    if suite is not None:
        path = find_suite_file(suite, benchmarks_dir)
        parsed = load_suite_file(path)
        base = path.resolve().parent
        if root is None and parsed.data_root is not None:
            root = base / Path(parsed.data_root).expanduser()
        name, description = parsed.name, parsed.description
        entries = [(e.benchmark, e.data_dir) for e in parsed.benchmarks]
        where = str(path)
    else:
        names = [n.strip() for n in (benchmark or "").split(",")]
        if not all(names):
            raise HarnessInputError(
                f"--benchmark '{benchmark}'",
                "has an empty name in its comma list",
                "write e.g. --benchmark sst5,ag_news",
            )
        base, description, where = None, "", "--benchmark"
        entries = [(n, None) for n in names]
        name = "+".join(names)
        if len(name) > 100 or not all(SAFE_NAME.match(n) for n in names):
            # Paths or long lists: a readable head and a hash keep the folder name short and unique.
            from harness.store.results import stable_hash

            stems = (re.sub(r"[^A-Za-z0-9._-]", "_", Path(n).stem).strip("._-") or "b" for n in names)
            name = "+".join(stems)[:80] + "-" + stable_hash(names, 8)
    members: list[SuiteMember] = []
    for entry, entry_dir in entries:
        as_path = Path(entry).expanduser()
        looks_like_path = as_path.suffix in (".yaml", ".yml") or "/" in entry
        target = (
            str(base / as_path)
            if looks_like_path and base is not None and not as_path.is_absolute()
            else entry
        )
        spec, _ = load_benchmark(target, benchmarks_dir)
        if spec.name in [m.spec.name for m in members]:
            raise HarnessInputError(
                f"{where} [benchmark '{spec.name}']", "listed twice", "list each benchmark once"
            )
        if spec.name == SUITES_DIR:
            raise HarnessInputError(
                f"{where} [benchmark '{spec.name}']",
                f"a benchmark named '{SUITES_DIR}' would share its results folder with the suite summaries",
                "rename the benchmark",
            )
        members.append(
            SuiteMember(benchmark=target, spec=spec, data_dir=_member_data_dir(entry_dir, root, base, spec))
        )
    return Suite(name=name, members=members, description=description, source=Path(where) if suite else None)


def _member_data_dir(
    entry_dir: str | None, root: Path | None, base: Path | None, spec: BenchmarkSpec
) -> Path | None:
    if entry_dir is not None:
        folder = Path(entry_dir).expanduser()
        if folder.is_absolute():
            return folder
        return (root if root is not None else base) / folder
    return root / spec.name if root is not None else None


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
    def failed(self) -> list[str]:
        """One line per problem: benchmarks that did not run, failed runs, a summary that was not written."""
        out = [f"benchmark {o.name}: {o.error}" for o in self.outcomes if o.error]
        out += [f"{o.name}: {label}" for o in self.outcomes for label in o.failed_runs]
        out += [f"{o.name}: stopped, {o.declined}" for o in self.outcomes if o.declined]
        if self.write_error:
            out.append(f"summary: {self.write_error}")
        return out


def model_names(config) -> list[str]:
    """The models a run command selects, validated now: a misspelt name stops the suite before it starts."""
    registry_path = config.registry_path or default_registry_path()
    names = []
    if config.models or not config.model_specs:
        names = [
            m.name for m in select_models(load_registry(registry_path), config.models or "all", registry_path)
        ]
    return names + [m.name for m in config.model_specs or [] if m.name not in names]


def run_suite(suite: Suite, config) -> SuiteSummary:
    """Run every benchmark of ``suite`` with the options of ``config`` (a ``RunConfig``), then summarise.

    Problems with the suite, its benchmarks' YAML, the models or the budget stop everything before any
    training (:class:`HarnessInputError`); a benchmark that fails while it runs is recorded and the next one
    runs.
    """
    from harness import pipeline
    from harness.store.results_store import ResultsStore

    models = model_names(config)
    if not 1 <= config.seeds <= pipeline.MAX_SEEDS:
        raise HarnessInputError(
            "--seeds",
            f"must be between 1 and {pipeline.MAX_SEEDS}, got {config.seeds}",
            "pass a smaller --seeds",
        )
    for member in suite.members:
        budget = config.budget or member.spec.default_budget
        if budget not in member.spec.budgets:
            raise HarnessInputError(
                f"--budget '{budget}'",
                f"not a budget of benchmark {member.spec.name} (suite {suite.name})",
                f"choose a profile every benchmark has: {sorted(_common_budgets(suite))}",
            )
    store = ResultsStore(config.results_dir)
    _say(
        config,
        f"suite {suite.name}: {len(suite.members)} benchmarks ({', '.join(suite.names)}), "
        f"{len(models)} model(s): {', '.join(models)}",
    )
    outcomes = []
    # One answer to the time question for the whole suite: asked at most once, whichever benchmark asks.
    scratch = tempfile.TemporaryDirectory(prefix="textclf-bench-suite-")
    config = dataclasses.replace(config, answer_file=config.answer_file or Path(scratch.name) / "answer")
    for i, member in enumerate(suite.members, 1):
        outcome = BenchmarkOutcome(name=member.spec.name, data_dir=member.data_dir)
        where = f"data {member.data_dir}" if member.data_dir else "data from the benchmark's own source"
        _say(config, f"=== benchmark {i}/{len(suite.members)}: {member.spec.name} ({where}) ===")
        start = time.perf_counter()
        try:
            summary = pipeline.run(
                dataclasses.replace(config, benchmark=member.benchmark, data_dir=member.data_dir)
            )
            outcome.configuration = summary.configuration
            outcome.failed_runs = dict(summary.failed)
            outcome.declined = summary.declined
            if pipeline.is_main_process():
                # The leaderboard the benchmark's report was just drawn from, or read once if that failed.
                outcome.board = summary.board or Leaderboard.from_store(
                    store, member.spec, summary.configuration
                )
                outcome.leaderboard = (
                    store.config_dir(member.spec.name, summary.configuration) / "leaderboard.md"
                )
        except HarnessInputError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one benchmark's failure must not lose the others
            outcome.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        outcome.seconds = time.perf_counter() - start
        if outcome.error:
            _say(
                config,
                f"benchmark {member.spec.name} FAILED after {outcome.seconds:.1f}s: {outcome.error}",
                warn=True,
            )
        outcomes.append(outcome)
        if outcome.declined:
            _say(config, f"stopped at benchmark {member.spec.name}: {outcome.declined}; the rest of the suite is not run",
                 warn=True)
            break
    scratch.cleanup()
    table = summarize(outcomes, models)
    result = SuiteSummary(suite=suite, models=models, outcomes=outcomes, table=table)
    if pipeline.is_main_process():
        out_dir = store.root / SUITES_DIR / suite.name
        try:
            result.path = write_summary(result, out_dir)
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


# ----- the summary ------------------------------------------------------------------------------------------


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


def f1_resamples(board: Leaderboard, models: list[str], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Macro-F1 of every model on ``n_boot`` resamples of the benchmark's test examples: (n_boot, models).

    One resample draws the test examples with replacement, the same draw for every model and seed (a paired
    bootstrap); a model's score is the mean over its seeds, as in its leaderboard. Examples are grouped by their
    (label, every run's prediction) pattern and the draw is a multinomial over the patterns: the same
    distribution as drawing examples, at a cost that does not grow with the test set. A model that did not
    complete scores -inf; one whose predictions are missing keeps its leaderboard score on every resample.
    """
    rows = {row.model: row for row in board.rows}
    out = np.full((n_boot, len(models)), -np.inf)
    runs: dict[int, list[analysis.Predictions]] = {}
    for j, model in enumerate(models):
        row = rows.get(model)
        if row is None or not row.results:
            continue
        if row.predictions:
            runs[j] = row.predictions
        else:
            out[:, j] = row.f1_macro
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
                stats.macro_f1.weighted(truth, one_hot[patterns[:, column + s]], weights)
                for s in range(len(preds))
            ]
            out[start : start + size, j] = np.mean(scores, axis=0)
            column += len(preds)
    return out


def rank_resamples(
    boards: list[Leaderboard], models: list[str], n_boot: int = N_BOOT, seed: int = 0
) -> np.ndarray:
    """Mean rank over the benchmarks of every model on each bootstrap resample, (n_boot, models).

    Every benchmark's test examples are resampled independently (:func:`f1_resamples`), the models are ranked on
    each benchmark and the ranks averaged: the spread is what the finite test sets leave uncertain about the
    mean rank, for these benchmarks (not for other benchmarks one might have chosen).
    """
    rng = np.random.default_rng(seed)
    total = np.zeros((n_boot, len(models)))
    for board in boards:
        total += ranks(f1_resamples(board, models, n_boot, rng))
    return total / max(len(boards), 1)


def summarize(
    outcomes: list[BenchmarkOutcome], models: list[str], n_boot: int = N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """One row per model: per-benchmark macro-F1 and rank, mean rank with its interval, mean cost.

    Columns: ``model``, ``mean_rank``, ``mean_rank_low``/``_high`` (95% percentile bootstrap interval),
    ``best_rank``, ``worst_rank``, ``mean_<column>`` for the catalogue's suite columns (``mean_f1_macro``,
    ``mean_mcc``...: over the benchmarks it completed), ``benchmarks_completed``,
    ``f1_macro[<benchmark>]`` and ``rank[<benchmark>]`` per benchmark that ran, then ``latency_p50_ms``,
    ``train_seconds``, ``peak_rss_mib`` and ``peak_cuda_mib`` (means over the benchmarks it completed).
    Sorted by mean rank.
    """
    ran = [o for o in outcomes if o.ran]
    columns = {"model": list(models)}
    if not ran or not models:
        return pd.DataFrame(columns)
    f1 = np.full((len(ran), len(models)), np.nan)
    quality = {column.name: np.full(f1.shape, np.nan) for column in metric_columns("suite")}
    costs: dict[str, np.ndarray] = {}
    for b, outcome in enumerate(ran):
        rows = {row.model: row for row in outcome.board.rows}
        for j, model in enumerate(models):
            row = rows.get(model)
            if row is None or not row.results:
                continue
            f1[b, j] = row.f1_macro
            for name, values in quality.items():
                values[b, j] = np.nan if (value := row.mean(name)) is None else value
            for key, value in _row_cost(row).items():
                costs.setdefault(key, np.full(f1.shape, np.nan))[b, j] = np.nan if value is None else value
    point = ranks(np.where(np.isnan(f1), -np.inf, f1))  # (benchmarks, models)
    resampled = rank_resamples([o.board for o in ran], models, n_boot, seed)
    done = ~np.isnan(f1)
    with np.errstate(invalid="ignore"):
        columns.update(
            {
                "mean_rank": point.mean(axis=0),
                "mean_rank_low": np.percentile(resampled, 2.5, axis=0),
                "mean_rank_high": np.percentile(resampled, 97.5, axis=0),
                "best_rank": point.min(axis=0),
                "worst_rank": point.max(axis=0),
                **{
                    f"mean_{name}": [
                        float(np.mean(v[~np.isnan(v)])) if (~np.isnan(v)).any() else np.nan for v in values.T
                    ]
                    for name, values in quality.items()
                },
                "benchmarks_completed": done.sum(axis=0),
            }
        )
    for b, outcome in enumerate(ran):
        columns[f"f1_macro[{outcome.name}]"] = f1[b]
    for b, outcome in enumerate(ran):
        columns[f"rank[{outcome.name}]"] = point[b]
    for key in ("latency_p50_ms", "train_seconds", "peak_rss_mib", "peak_cuda_mib"):
        values = costs.get(key, np.full(f1.shape, np.nan))
        columns[key] = [float(np.mean(v[~np.isnan(v)])) if (~np.isnan(v)).any() else np.nan for v in values.T]
    table = pd.DataFrame(columns)
    table["_f1"] = table["mean_f1_macro"].fillna(-1.0)
    table = table.sort_values(["mean_rank", "_f1", "model"], ascending=[True, False, True], kind="stable")
    return table.drop(columns="_f1").reset_index(drop=True)


# ----- rendering --------------------------------------------------------------------------------------------


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _rank(value: float) -> str:
    return (
        f"{value:g}"
        if float(value).is_integer()
        else f"{value:.1f}"
        if float(value * 2).is_integer()
        else f"{value:.2f}"
    )


def render_markdown(summary: SuiteSummary, out_dir: Path, figure: str | None) -> str:
    """The summary's markdown; every name, description and message goes through :func:`escape`."""
    suite, table = summary.suite, summary.table
    ran = [o for o in summary.outcomes if o.ran]
    lines = [f"# Suite {escape(suite.name)}: {len(suite.members)} benchmarks", ""]
    if suite.description:
        lines += [escape(suite.description), ""]
    lines.append(
        f"Models: {', '.join(escape(m) for m in summary.models)}. Every benchmark ran with the same options in one "
        "command; each has its own leaderboard (linked below) with intervals, per-class scores and cost."
    )
    devices = sorted(
        {r.device.device_name for o in ran for r in o.board.completed_results if r.device is not None}
    )
    if devices:
        lines.append(f"Measured on: {', '.join(escape(d) for d in devices)}.")
    lines += ["", "## Benchmarks", ""]
    bench_rows = []
    for outcome in summary.outcomes:
        if outcome.ran:
            board = outcome.board
            link = (
                os.path.relpath(outcome.leaderboard, out_dir).replace(os.sep, "/")
                if outcome.leaderboard
                else None
            )
            first = board.completed_results[0] if board.completed_results else None
            rows = f"{first.data.train_rows:,} / {first.data.eval_rows:,}" if first and first.data else "n/a"
            status = "ran" + (f", {len(outcome.failed_runs)} failed run(s)" if outcome.failed_runs else "")
            bench_rows.append(
                [
                    escape(outcome.name),
                    str(board.spec.num_labels),
                    f"{escape(board.spec.eval_split)}",
                    rows,
                    escape(board.configuration.describe()),
                    f"[{escape(board.configuration.label)}]({link})"
                    if link
                    else escape(board.configuration.label),
                    status,
                    f"{outcome.seconds:.0f}",
                ]
            )
        else:
            bench_rows.append(
                [
                    escape(outcome.name),
                    "",
                    "",
                    "",
                    "",
                    "",
                    f"FAILED: {escape(outcome.error, 300)}",
                    f"{outcome.seconds:.0f}",
                ]
            )
    lines.append(
        tabulate(
            bench_rows,
            headers=[
                "benchmark",
                "classes",
                "scored on",
                "train / eval rows",
                "configuration",
                "leaderboard",
                "status",
                "seconds",
            ],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    if ran and len(table):
        lines += [
            "",
            "## Models across benchmarks",
            "",
            _quality_table(table, ran),
            "",
            _rank_caption(len(ran), summary),
        ]
        lines += ["", "## Cost (mean over benchmarks)", "", _cost_table(table, len(ran)), "", COST_CAPTION]
    problems = summary.failed
    if problems:
        lines += ["", "## Failures", ""] + [f"- {escape(p, 400)}" for p in problems]
    if figure:
        caption = (
            "Mean rank with its interval, and each model's macro-F1 distance from the best per benchmark"
        )
        lines += ["", "## Plot", "", f"![{caption}]({figure})"]
    return "\n".join(lines) + "\n"


COST_CAPTION = (
    "Mean over the benchmarks each model completed of that benchmark's mean over seeds: batch-1 end-to-end "
    "latency p50 (raw text in, probabilities out), training wall time, and the peak resident memory of the "
    "model's own process over training and inference (peak CUDA memory allocated, on a GPU). Latency depends on "
    "each benchmark's text lengths and training time on its rows and epochs: compare models within a row of "
    "benchmarks, not with other suites."
)


def _rank_caption(n_benchmarks: int, summary: SuiteSummary) -> str:
    return (
        f"Each cell: macro-F1 on that benchmark (its leaderboard's number: mean over seeds) and, in brackets, the "
        f"model's rank there by macro-F1 (1 = best; ties share the mean of their places; a model that failed or did "
        f"not run there takes the last places). Mean rank: the mean of those ranks over the {n_benchmarks} "
        f"benchmark(s) that ran; the table is sorted by it. 95% interval: percentile bootstrap over test examples "
        f"({N_BOOT:,} resamples): each resample redraws every benchmark's test set with replacement, the same draw "
        f"for every model and seed, recomputes each macro-F1, the ranks and their mean. It covers the sampling of "
        f"these test sets, not the choice of benchmarks; best–worst shows how far the rank moves between "
        f"benchmarks. Mean macro-F1: over the benchmarks the model completed (how many: the last column)."
    )


def _quality_table(table: pd.DataFrame, ran: list[BenchmarkOutcome]) -> str:
    rows = []
    for _, rec in table.iterrows():
        cells = [
            escape(rec["model"]),
            f"{_fmt(rec['mean_rank'], 2)} [{_fmt(rec['mean_rank_low'], 2)}, {_fmt(rec['mean_rank_high'], 2)}]",
            _rank(rec["best_rank"])
            if rec["best_rank"] == rec["worst_rank"]
            else f"{_rank(rec['best_rank'])}–{_rank(rec['worst_rank'])}",
            *(_fmt(rec[f"mean_{column.name}"], column.digits) for column in metric_columns("suite")),
        ]
        for outcome in ran:
            f1, place = rec[f"f1_macro[{outcome.name}]"], rec[f"rank[{outcome.name}]"]
            cells.append(f"{'failed' if np.isnan(f1) else _fmt(f1, 4)} ({_rank(place)})")
        cells.append(f"{int(rec['benchmarks_completed'])}/{len(ran)}")
        rows.append(cells)
    headers = [
        "model",
        "mean rank [95% interval]",
        "best–worst",
        *(f"mean {column.label}" for column in metric_columns("suite")),
        *(escape(o.name) for o in ran),
        "completed",
    ]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _cost_table(table: pd.DataFrame, n_benchmarks: int) -> str:
    cuda = table["peak_cuda_mib"].notna().any()
    headers = [
        "model",
        "batch-1 p50 ms",
        "train s",
        "peak RSS MiB",
        *(["peak CUDA MiB"] if cuda else []),
        "benchmarks",
    ]
    rows = []
    for _, rec in table.iterrows():
        cells = [
            escape(rec["model"]),
            _fmt(rec["latency_p50_ms"], 2),
            _fmt(rec["train_seconds"], 1),
            _fmt(rec["peak_rss_mib"], 0),
        ]
        if cuda:
            cells.append(_fmt(rec["peak_cuda_mib"], 0))
        cells.append(f"{int(rec['benchmarks_completed'])}/{n_benchmarks}")
        rows.append(cells)
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


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


def write_summary(summary: SuiteSummary, out_dir: Path) -> Path:
    """Write summary.md, .csv, .json and .png (atomically) into ``out_dir``; returns the markdown's path."""
    from harness.report import figures as plots
    from harness.store.results_store import atomic_write_bytes, atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    table = summary.table
    atomic_write_text(out_dir / "summary.csv", table.to_csv(index=False))
    ran = [o for o in summary.outcomes if o.ran]
    payload = {
        "suite": summary.suite.name,
        "description": summary.suite.description,
        "models": summary.models,
        "n_boot": N_BOOT,
        "benchmarks": [
            {
                "benchmark": o.name,
                "data_dir": str(o.data_dir) if o.data_dir else None,
                "configuration": o.configuration,
                "status": "ran" if o.ran else "failed",
                "error": o.error,
                "failed_runs": o.failed_runs,
                "seconds": round(o.seconds, 3),
            }
            for o in summary.outcomes
        ],
        "rows": json.loads(table.to_json(orient="records")),
    }
    atomic_write_text(out_dir / "summary.json", json.dumps(payload, indent=2) + "\n")
    fig = summary_figure(table, [o.name for o in ran])
    figure = None
    if fig is not None:
        atomic_write_bytes(out_dir / "summary.png", plots.to_png(fig))
        figure = "summary.png"
    else:
        (out_dir / "summary.png").unlink(
            missing_ok=True
        )  # one from an earlier run would not match this summary
    path = out_dir / "summary.md"
    atomic_write_text(path, render_markdown(summary, out_dir, figure))
    return path
