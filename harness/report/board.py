"""The leaderboard of one configuration: read from the store once, as typed objects, then rendered.

``Leaderboard.from_store`` is the only place the report layer reads the store: every result is validated
into a :class:`~harness.store.results.RunResult`, every predictions file is read once, and the statistics are
computed once. Markdown, CSV/JSON, plots and the error analysis (``harness.report.markdown``) are drawn from this
object, and notebooks use it directly::

    board = Leaderboard.from_store(ResultsStore("results"), spec)
    board.to_pandas()        # one row per model and seed, every metric
    render_markdown(board, figures=None)   # the leaderboard's text (harness.report.markdown)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.config.schema import BenchmarkSpec
from harness.core.errors import HarnessInputError
from harness.metrics.columns import columns
from harness.report import analysis
from harness.report.records import result_record
from harness.store.results import RESULT_FILE, Configuration, benchmark_hash
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

    @property
    def results(self):
        """Typed results of the runs that count: one when every seed gave identical predictions."""
        runs = self.completed[:1] if self.identical_seeds else self.completed
        return [r.result for r in runs]

    @property
    def f1_macro(self) -> float | None:
        return self.mean("f1_macro")

    def mean(self, column: str) -> float | None:
        """A metric column's mean over the runs that count; None when none of them has it."""
        values = [v for r in self.results if (v := getattr(r.metrics, column)) is not None]
        return float(np.mean(values)) if values else None

    @property
    def seeds_text(self) -> str:
        if self.identical_seeds:
            return f"{len(self.completed)} seeds, identical predictions: shown as one run"
        return f"{len(self.completed)} seeds" if len(self.completed) > 1 else ""


class Leaderboard:
    """Models of one benchmark configuration, ranked by mean macro-F1, with intervals and paired tests."""

    def __init__(
        self,
        spec: BenchmarkSpec,
        configuration: Configuration,
        runs: RunSet,
        rows: list[ModelRow],
        eval_texts: pd.DataFrame | None,
        other_configurations: list[Configuration],
        n_boot: int,
    ):
        self.spec = spec
        self.configuration = configuration
        self.runs = runs
        self.rows = rows
        self.eval_texts = eval_texts
        self.other_configurations = other_configurations
        self.n_boot = n_boot

    @classmethod
    def from_store(
        cls, store: ResultsStore, spec: BenchmarkSpec, label: str | None = None, n_boot: int = analysis.N_BOOT
    ) -> Leaderboard:
        """Read one configuration of a benchmark (default: the one the last command ran) and rank it."""
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
        runs = RunSet.read(store, spec.name, configuration.label, spec.label_names)
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
            row.predictions = analysis.load_model_predictions(row.completed, spec.num_labels)
            _score_unstored_columns(row.completed, row.predictions)
            row.identical_seeds = analysis.identical_predictions(row.predictions)
            if row.identical_seeds:
                row.predictions = row.predictions[:1]
            rows.append(row)
        rows.sort(key=lambda r: (-(r.f1_macro if r.f1_macro is not None else -1.0), r.model))
        _attach_statistics(rows, n_boot)
        others = [c for c in store.configurations(spec.name) if c.label != configuration.label]
        return cls(spec, configuration, runs, rows, store.read_eval_texts(spec.name, configuration.label), others, n_boot)

    # ----- views ------------------------------------------------------------------------------------------

    @property
    def completed_results(self):
        return [r for row in self.rows for r in row.results]

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
                record["ece"] = ece.get(run.result.seed)
                record["brier"] = brier.get(run.result.seed)
                record["identical_to_first_seed"] = row.identical_seeds and run is not row.completed[0]
                records.append(record)
        return pd.DataFrame.from_records(records)


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


def _attach_statistics(rows: list[ModelRow], n_boot: int) -> None:
    """Intervals of every model's seed mean, and the paired test of each model against the leader."""
    for row in rows:
        if row.predictions:
            row.stats = analysis.model_statistics(row.predictions, n_boot)
    leader = rows[0] if rows and rows[0].stats else None
    if leader is None:
        return
    leader.vs_best = "leader"
    for row in rows[1:]:
        if row.stats:
            row.vs_best = analysis.compare_to_leader(leader.predictions, row.predictions, n_boot)
