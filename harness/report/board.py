"""The leaderboard of one configuration: read from the store once, as typed objects, then rendered.

``Leaderboard.from_store`` is the only place the report layer reads the store: every result is validated
into a :class:`~harness.store.results.RunResult`, every predictions file is read once (:class:`PredictionFiles`),
and the statistics, the per-group tables, the transfer matrices and the comparison warnings are computed once.
The sections (``harness.report.sections``), their markdown (``harness.report.markdown``), the CSV/JSON and the
figures (``harness.report.publish``) are drawn from this object, and notebooks use it directly::

    board = Leaderboard.from_store(ResultsStore("results"), spec)
    board.to_pandas()        # one row per model and seed, every metric
    board.group_tables["lang"], board.transfer["lang"], board.warnings
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config.schema import BenchmarkSpec, Budget
from harness.core.errors import HarnessInputError
from harness.core.escape import escape
from harness.data.loading import normalized_text, untrained_warning
from harness.metrics.columns import MetricColumn, columns
from harness.metrics.extra import extra_columns, main_column
from harness.models import CHANCE_FAMILIES
from harness.report import analysis, conditions, groups, tuning
from harness.report.cells import budget_text
from harness.report.records import get, result_record
from harness.store.results import RESULT_FILE, Configuration, RunResult, benchmark_hash
from harness.store.results_store import CONFIGURATION_FILE, ResultsStore, StoredRun


@dataclass
class RunSet:
    """Every run of one configuration, read once: the whole train split and each filtered variant."""

    by_variant: dict[str | None, list[StoredRun]] = field(default_factory=dict)
    invalid: list[tuple[Path, str]] = field(default_factory=list)

    def runs(self, variant: str | None = None) -> list[StoredRun]:
        return self.by_variant.get(variant, [])

    def variants(self) -> list[str]:
        return sorted(v for v in self.by_variant if v is not None)

    @property
    def empty(self) -> bool:
        """No run at all, usable or not: nothing a leaderboard could show."""
        return not self.invalid and not any(self.by_variant.values())

    @classmethod
    def read(cls, store: ResultsStore, benchmark: str, label: str, label_names: list[str] | None = None) -> RunSet:
        """Every run, checked as ``run`` checks it (:meth:`ResultsStore.validate_run`); with ``label_names``, a
        completed run scored on other classes (a result edited by hand) is listed as invalid too."""
        out = cls()
        for variant in [None, *store.variants(benchmark, label)]:
            for item in store.iter_runs(benchmark, label, variant):
                if not isinstance(item, StoredRun):
                    out.invalid.append(item)
                elif label_names is not None and item.result.completed and (
                    (scored := list(item.result.metrics.per_class)) != label_names
                ):
                    where = item.run_dir / RESULT_FILE
                    out.invalid.append((item.run_dir, f"{where}: scored classes {scored}, the benchmark has {label_names}"))
                else:
                    out.by_variant.setdefault(variant, []).append(item)
        return out


class PredictionFiles:
    """Each run's predictions.csv, read at most once (None: missing or scored on other classes)."""

    def __init__(self, num_labels: int):
        self.num_labels = num_labels
        self._read: dict[Path, analysis.Predictions | None] = {}

    def of(self, run: StoredRun) -> analysis.Predictions | None:
        if run.run_dir not in self._read:
            result = run.result
            self._read[run.run_dir] = analysis.read_predictions(run.run_dir, result.model, result.seed, self.num_labels)
        return self._read[run.run_dir]


def training_set(runs: RunSet, variant: str | None, files: PredictionFiles) -> groups.TrainingSet:
    """Each model's lowest-seed completed run of one variant with its predictions, so a table's cells share a run."""
    chosen: dict[str, StoredRun] = {}
    for run in runs.runs(variant):
        model = run.result.model
        if run.result.completed and (model not in chosen or run.result.seed < chosen[model].result.seed):
            chosen[model] = run
    first = {model: groups.FirstRun(run, files.of(run)) for model, run in chosen.items()}
    return groups.TrainingSet(groups.variant_filter(runs.runs(variant)) if variant else None, first)


def group_tables(
    runs: RunSet, spec: BenchmarkSpec, files: PredictionFiles, model_order: list[str] | None = None
) -> dict[str, list[groups.RunScores]]:
    """Per group column, each model's macro-F1 per value on the whole train split (columns without scores left out)."""
    whole = training_set(runs, None, files)
    tables = {c: groups.per_group_scores(whole.first, c, model_order) for c in spec.group_columns}
    return {c: scored for c, scored in tables.items() if scored}


def transfer_tables(
    runs: RunSet, spec: BenchmarkSpec, files: PredictionFiles
) -> dict[str, dict[str, dict[str, groups.RunScores]]]:
    """Per group column, ``{model: {train row: scores}}`` (columns without a filtered run left out)."""
    whole = training_set(runs, None, files)
    filtered = [training_set(runs, v, files) for v in runs.variants() if _filters_one_of(runs, v, spec.group_columns)]
    tables = {c: groups.transfer_matrices(whole, filtered, c) for c in spec.group_columns}
    return {c: matrices for c, matrices in tables.items() if matrices}


def _filters_one_of(runs: RunSet, variant: str, columns: list[str]) -> bool:
    """Whether a variant's runs were trained on the values of one group column (only those fill a matrix)."""
    found = groups.variant_filter(runs.runs(variant))
    return bool(found) and len(found) == 1 and next(iter(found)) in columns


@dataclass
class ModelRow:
    """One model of the leaderboard: its runs (one per seed), predictions and statistics."""

    model: str
    completed: list[StoredRun]
    failed: list[StoredRun]
    predictions: list[analysis.Predictions] = field(default_factory=list)
    identical_seeds: bool = False
    stats: dict | None = None
    vs_best: dict | str | None = None
    # What its predictions say of the model itself: classes it never predicts, a score no better than chance.
    prediction_notes: list[str] = field(default_factory=list)
    extra_scores: dict[int, dict[str, float | None]] = field(default_factory=dict)  # seed -> extra metric -> score

    @property
    def results(self):
        """Typed results of the runs that count: one when every seed gave identical predictions."""
        runs = self.completed[:1] if self.identical_seeds else self.completed
        return [r.result for r in runs]

    @property
    def f1_macro(self) -> float | None:
        return self.mean("f1_macro")

    def score(self, result: RunResult, column: str) -> float | None:
        """One run's score in a catalogue column (stored) or an extra metric (computed from its predictions)."""
        if column in type(result.metrics).model_fields:
            return getattr(result.metrics, column)
        return self.extra_scores.get(result.seed, {}).get(column)

    def mean(self, column: str) -> float | None:
        """A metric column's mean over the runs that count; None when none of them has it."""
        values = [v for r in self.results if (v := self.score(r, column)) is not None]
        return float(np.mean(values)) if values else None

    @property
    def seeds_text(self) -> str:
        if self.identical_seeds:
            return f"{len(self.completed)} seeds, identical predictions: shown as one run"
        return f"{len(self.completed)} seeds" if len(self.completed) > 1 else ""


class Leaderboard:
    """Models of one benchmark configuration, ranked by the benchmark's main metric (mean over seeds), with
    intervals, paired tests, per-group tables, transfer matrices and the warnings of what differs between the
    rows: everything a report shows."""

    def __init__(
        self,
        spec: BenchmarkSpec,
        configuration: Configuration,
        runs: RunSet,
        rows: list[ModelRow],
        eval_texts: pd.DataFrame | None,
        other_configurations: list[Configuration],
        n_boot: int,
        files: PredictionFiles | None = None,
        extra: list[MetricColumn] | None = None,
        in_progress: list[tuple[str | None, str, int]] | None = None,
    ):
        self.spec = spec
        self.extra = extra if extra is not None else extra_columns(spec)
        self.main = main_column(spec, self.extra)
        self.configuration = configuration
        self.runs = runs
        self.rows = rows
        self.eval_texts = eval_texts
        self.other_configurations = other_configurations
        self.n_boot = n_boot
        files = files or PredictionFiles(spec.num_labels)
        order = [row.model for row in rows]
        self.group_tables = group_tables(runs, spec, files, order)
        self.transfer = transfer_tables(runs, spec, files)
        self.in_progress = in_progress or []  # (variant, model, seed) of the runs still running as it was read
        self.warnings = [*in_progress_warnings(self.in_progress), *comparison_warnings(self.completed_results),
                         *untrained_warnings(self.completed_results, spec), *duplicate_warnings(rows, eval_texts, spec)]
        self.macro_note = macro_note(self.completed_results, spec)
        attach_prediction_notes(rows, spec, self.main)
        # Every seed's study counts (not only the seeds ``results`` keeps when their predictions are identical).
        self.expected_validation = tuning.expected_validation({row.model: [r.result for r in row.completed] for row in rows})
        # Said apart too, so the command that wrote the board can repeat it on stderr.
        self.busy_warning = conditions.busy_warning([r.result for row in rows for r in row.completed])
        if self.busy_warning:
            self.warnings.append(escape(self.busy_warning))

    @classmethod
    def from_store(
        cls, store: ResultsStore, spec: BenchmarkSpec, label: str | None = None, n_boot: int = analysis.N_BOOT
    ) -> Leaderboard:
        """Read one configuration of a benchmark (default: the one the last command ran) and rank it."""
        configuration = _configuration(store, spec, label)
        runs = RunSet.read(store, spec.name, configuration.label, spec.label_names)
        files = PredictionFiles(spec.num_labels)
        extra = extra_columns(spec)
        main = main_column(spec, extra)
        rows = _model_rows(runs, files, extra, main)
        _attach_statistics(rows, n_boot, main)
        others = [c for c in store.configurations(spec.name) if c.label != configuration.label]
        eval_texts = store.read_eval_texts(spec.name, configuration.label)
        in_progress = store.runs_in_progress(spec.name, configuration.label)
        return cls(spec, configuration, runs, rows, eval_texts, others, n_boot, files, extra, in_progress)

    # ----- views ------------------------------------------------------------------------------------------

    @property
    def completed_results(self):
        return [r for row in self.rows for r in row.results]

    @property
    def table_columns(self) -> list[MetricColumn]:
        """The quality columns of the models table: the catalogue's headline ones, the main metric when it is not
        one of them, then the extra metrics."""
        shown = columns("table")
        if self.main not in shown and self.main not in self.extra:
            shown.append(self.main)
        return shown + self.extra

    def first_predictions(self) -> dict[str, analysis.Predictions]:
        """Each model's lowest-seed predictions, in leaderboard order (plots and error analysis)."""
        return {row.model: row.predictions[0] for row in self.rows if row.predictions}

    def to_pandas(self) -> pd.DataFrame:
        """One row per model and seed (failed runs included) with every metric and cost figure."""
        records = []
        for rank, row in enumerate(self.rows, 1):
            stats = row.stats or {}
            ece = dict(zip(stats.get("seeds", []), stats.get("ece", []), strict=False))
            brier = dict(zip(stats.get("seeds", []), stats.get("brier", []), strict=False))
            for run in [*row.completed, *row.failed]:
                record = {"rank": rank if row.completed else None, **result_record(run.result, self.spec.label_names)}
                record.update({c.name: row.extra_scores.get(run.result.seed, {}).get(c.name) for c in self.extra})
                record["ece"] = ece.get(run.result.seed)
                record["brier"] = brier.get(run.result.seed)
                record["identical_to_first_seed"] = row.identical_seeds and run is not row.completed[0]
                records.append(record)
        return pd.DataFrame.from_records(records)


def _configuration(store: ResultsStore, spec: BenchmarkSpec, label: str | None) -> Configuration:
    """The configuration to report, refused in one line when it is missing, damaged or of another definition."""
    configuration = store.find_configuration(spec.name, label)
    if configuration is None:
        # A damaged or hand-moved configuration file is named, never reported as an empty configuration.
        problem = store.configuration_problem(spec.name, label or store.current_label(spec.name))
        if problem is not None:
            raise problem
        known = [c.label for c in store.configurations(spec.name)]
        raise HarnessInputError(
            f"{store.benchmark_dir(spec.name)}",
            f"no configuration {label!r} in the store" if label else "no runs of this benchmark in the store",
            f"choose one of {known}" if known else "run the benchmark first",
        )
    if configuration.benchmark_hash != benchmark_hash(spec):
        # Its runs were scored on another definition (classes, columns, splits): drawn with this one, the
        # classes and columns would not be theirs.
        raise HarnessInputError(
            str(store.config_dir(spec.name, configuration.label) / CONFIGURATION_FILE),
            f"made with another definition of benchmark {spec.name} (benchmark_hash "
            f"{configuration.benchmark_hash}; the benchmark YAML now gives {benchmark_hash(spec)})",
            "restore the benchmark YAML these runs were made with, or rerun the benchmark: the YAML as it is "
            "now makes a configuration of its own",
        )
    return configuration


def _model_rows(runs: RunSet, files: PredictionFiles, extra: list[MetricColumn], main: MetricColumn) -> list[ModelRow]:
    """One row per model of the whole train split, its seeds' predictions read once, ranked by the main metric's
    mean (best first in its direction; a model without it last)."""
    by_model: dict[str, list[StoredRun]] = {}
    for run in runs.runs(None):
        by_model.setdefault(run.result.model, []).append(run)
    rows = []
    for model, model_runs in by_model.items():
        model_runs.sort(key=lambda r: r.result.seed)
        row = ModelRow(
            model=model,
            completed=[r for r in model_runs if r.result.completed],
            failed=[r for r in model_runs if not r.result.completed],
        )
        row.predictions = analysis.load_model_predictions(row.completed, files.of)
        _score_unstored_columns(row.completed, row.predictions)
        row.identical_seeds = analysis.identical_predictions(row.predictions)
        if row.identical_seeds:
            row.predictions = row.predictions[:1]
        row.extra_scores = {p.seed: {c.name: c.score(p.labels, p.probs) for c in extra} for p in row.predictions}
        rows.append(row)
    sign = -1.0 if main.higher_is_better else 1.0

    def order(row: ModelRow):
        value = row.mean(main.name)
        return (value is None, sign * value if value is not None else 0.0, row.model)

    rows.sort(key=order)
    return rows


def _score_unstored_columns(runs: list[StoredRun], predictions: list[analysis.Predictions]) -> None:
    """Columns of the catalogue a result was written without (added since) are computed from its predictions.

    The same function the runner stores (``MetricColumn.score``) on the run's own predictions.csv; a run whose
    predictions are missing keeps them absent (n/a).
    """
    by_seed = {p.seed: p for p in predictions}
    for run in runs:
        metrics, preds = run.result.metrics, by_seed.get(run.result.seed)
        if preds is None:
            continue
        for column in columns():
            if column.name not in metrics.model_fields_set:
                setattr(metrics, column.name, column.score(preds.labels, preds.probs))


def tested_column(main: MetricColumn) -> MetricColumn:
    """The column the paired test against the leader runs on: the main metric where it has an interval function,
    else macro-F1 (an extra metric's evaluate module cannot be resampled ten thousand times)."""
    return main if main.interval is not None else next(c for c in columns() if c.name == "f1_macro")


def _attach_statistics(rows: list[ModelRow], n_boot: int, main: MetricColumn) -> None:
    """Intervals of every model's seed mean, and the paired test of each model against the leader."""
    tested = tested_column(main)
    metrics = {**analysis.CI_METRICS, tested.name: tested.interval}
    for row in rows:
        if row.predictions:
            row.stats = analysis.model_statistics(row.predictions, n_boot, metrics=metrics)
    leader = rows[0] if rows and rows[0].stats else None
    if leader is None:
        return
    leader.vs_best = "leader"
    for row in rows[1:]:
        if row.stats:
            row.vs_best = analysis.compare_to_leader(leader.predictions, row.predictions, n_boot, tested.interval)
            row.vs_best["metric"] = tested.name  # what the exports and the page say the p is of


def comparison_warnings(results: list[RunResult]) -> list[str]:
    """What differs between the rows, computed from what actually ran (never from labels)."""
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
    differing("device", lambda r: get(r, "device", "device_name") or "?")
    # Runs side by side had a part of the cores, a run alone all of them: their cost figures differ for it.
    differing("threads per run", lambda r: str(r.device.thread_share.threads),
              [r for r in results if r.device is not None and r.device.thread_share is not None])
    # TF-IDF has no training precision; among the transformers a mix (bf16 here, fp32 there) is worth a warning.
    differing("training precision", lambda r: r.precision or "?", [r for r in results if r.family == "transformer"])
    differing("harness version", lambda r: get(r, "environment", "harness_source_sha256") or "?")
    overridable = set(Budget.model_fields) - {"learning_rate", "weight_decay", "warmup_ratio", "seed"}

    def shared_budget(r: RunResult) -> str:
        used = set(r.budget_fields_used or overridable) & overridable
        return budget_text(r.budget, sorted(used)) if r.budget else "?"

    if len({shared_budget(r) for r in results if r.family == "transformer"}) > 1:
        warnings.append("transformer rows trained under different budget values; compare with care")
    return warnings


def in_progress_warnings(in_progress: list[tuple[str | None, str, int]]) -> list[str]:
    """A board read while runs of its configuration are still running is not final: say which."""
    if not in_progress:
        return []
    by_run: dict[str, list[str]] = {}
    for variant, model, seed in in_progress:
        by_run.setdefault(escape(model) + (f" ({escape(variant)})" if variant else ""), []).append(str(seed))
    runs = "; ".join(f"{name} seed {', '.join(seeds)}" for name, seeds in by_run.items())
    return [f"{len(in_progress)} run(s) of this configuration were still running when this was written: {runs}; "
            "their rows are missing or may change: rebuild it with `report` once they finish"]


def untrained_warnings(results: list[RunResult], spec: BenchmarkSpec) -> list[str]:
    """One line per class that some run had no training rows of (results written before it was recorded: none)."""
    found: dict[str, int] = {}
    for r in results:
        for name, rows in (r.data.classes_without_train_rows or {}).items():
            found[name] = max(rows, found.get(name, 0))
    return [untrained_warning(escape(name), rows, escape(spec.eval_split)) for name, rows in found.items()]


def macro_note(results: list[RunResult], spec: BenchmarkSpec) -> str | None:
    """Which classes the macro averages cover, when a class has no row in the evaluation split (left out of them)."""
    if not results:
        return None
    absent = [n for n in spec.label_names if all(r.metrics.per_class[n].support == 0 for r in results)]
    if not absent:
        return None
    split = escape(spec.eval_split)
    names = ", ".join(f"'{escape(n)}'" for n in absent)
    return (f"macro averages (macro-F1, precision, recall) over the {len(spec.label_names) - len(absent)} classes "
            f"present in the '{split}' split; {names} {'has' if len(absent) == 1 else 'have'} no {split} rows")


def duplicate_warnings(rows: list[ModelRow], eval_texts: pd.DataFrame | None, spec: BenchmarkSpec) -> list[str]:
    """Evaluation rows that repeat another's text (as leakage compares texts) and label, counted from the stored
    texts and a run's labels: the bootstrap draws each copy as an independent example."""
    first = next((row.predictions[0] for row in rows if row.predictions), None)
    if first is None or eval_texts is None or not len(eval_texts):
        return []
    texts = dict(zip(eval_texts["id"].tolist(), eval_texts["text"].astype(str).tolist(), strict=False))
    keys = [(normalized_text(texts[i]), int(y)) for i, y in zip(first.ids.tolist(), first.labels, strict=True)
            if i in texts]
    repeated = [n for n in Counter(keys).values() if n > 1]
    if not repeated:
        return []
    copies = sum(n - 1 for n in repeated)
    return [f"{copies:,} of {len(keys):,} '{escape(spec.eval_split)}' rows repeat another row's text and label "
            f"({len(repeated):,} text(s) repeated, the most {max(repeated):,} times; exact after Unicode NFKC, "
            "whitespace and case normalisation): the bootstrap intervals and paired tests take every copy as an "
            "independent example, so they are narrower than the data supports"]


def _main_interval(row: ModelRow, metric: str) -> dict | None:
    ci = get(row.stats, "ci", metric)
    return ci if ci and np.isfinite(ci["low"]) else None


def attach_prediction_notes(rows: list[ModelRow], spec: BenchmarkSpec, main: MetricColumn) -> None:
    """A note on each model whose predictions are degenerate: fewer classes than the benchmark has, or a main
    metric whose interval reaches the best chance baseline of the board (the chance rows get none: by design).

    The interval is the tested column's (the main metric, or macro-F1 when the main metric has no interval)."""
    tested = tested_column(main)
    metric, higher = tested.name, tested.higher_is_better
    chance = [(row.model, value) for row in rows
              if row.results and row.results[0].family in CHANCE_FAMILIES and (value := row.mean(metric)) is not None]
    best_chance = (max if higher else min)(chance, key=lambda c: c[1]) if chance else None
    for row in rows:
        row.prediction_notes = []
        if not row.predictions or row.results[0].family in CHANCE_FAMILIES:
            continue
        used = [np.unique(p.predicted) for p in row.predictions]
        fewest = min(used, key=len)
        if len(fewest) < spec.num_labels:
            counts = sorted({len(u) for u in used})
            names = ", ".join(spec.label_names[k] for k in fewest)
            said = "-".join(str(c) for c in (counts if len(counts) == 1 else [counts[0], counts[-1]]))
            row.prediction_notes.append(
                f"collapsed: predicts {said} of {spec.num_labels} classes (only {escape(names, 120)})")
        ci = _main_interval(row, metric)
        if best_chance is not None and ci is not None and (
            ci["low"] <= best_chance[1] if higher else ci["high"] >= best_chance[1]
        ):
            label, digits = tested.label, tested.digits
            row.prediction_notes.append(
                f"no better than chance: its {label} interval [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}] "
                f"reaches {escape(best_chance[0])}'s {best_chance[1]:.{digits}f}")


def model_rows(runs: RunSet, files: PredictionFiles, spec: BenchmarkSpec) -> list[ModelRow]:
    """Each model's row of the whole train split with its seeds' predictions (no statistics): what ``compare``
    pairs between two configurations."""
    extra = extra_columns(spec)
    return _model_rows(runs, files, extra, main_column(spec, extra))
