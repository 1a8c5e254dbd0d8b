"""The Python API: run a benchmark from code and get the leaderboard back as an object.

    >>> from harness import run_benchmark
    >>> board = run_benchmark("amazon_polarity", models=["tfidf-logreg"], data_dir="data/amazon_polarity")
    >>> board.to_pandas()            # one row per model and seed, every metric
    >>> print(to_markdown(board))     # the leaderboard's text; write_report(board, folder) writes every file
    >>> run_suite(["sst5", "ag_news"], models=["tfidf-logreg"], data_root="data").table   # several benchmarks

Models are registry names or :class:`~harness.config.schema.ModelSpec` entries built in code (the same fields as a
``models_registry.yaml`` entry), so a notebook can try a model without editing YAML. Everything else behaves
as the command line does: the same store, the same skipping of finished runs, the same one-line errors
(raised as :class:`~harness.core.errors.HarnessInputError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config.registry import load_benchmark
from harness.config.schema import ModelSpec
from harness.pipeline import RunConfig, run
from harness.report.board import Leaderboard
from harness.report.publish import render_markdown, write_leaderboard
from harness.store.results_store import ResultsStore

if TYPE_CHECKING:
    from harness.suite import SuiteSummary


def run_benchmark(
    benchmark: str = "amazon_polarity",
    models: str | Sequence[str | ModelSpec | dict] = "all",
    *,
    budget: str | None = None,
    seeds: int = 1,
    data_dir: str | Path | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    fixed_train_sample: bool = False,
    results_dir: str | Path = "results",
    registry: str | Path | None = None,
    benchmarks_dir: str | Path | None = None,
    force: bool = False,
    isolate: bool = True,
    quiet: bool = True,
    latency_samples: int = 50,
    save_model: bool = True,
) -> Leaderboard:
    """Train and evaluate ``models`` on ``benchmark`` (skipping finished runs) and return the leaderboard.

    Args:
        benchmark: a benchmark name (``benchmarks/<name>.yaml``) or a path to a benchmark YAML.
        models: ``"all"``, a comma-separated string of registry names, or a list of names, ``ModelSpec``
            objects or dicts with the fields of a registry entry.
        budget, seeds, data_dir, limit_train, limit_test, fixed_train_sample, results_dir, registry,
        benchmarks_dir, force, isolate, latency_samples, save_model: as the command line's flags.
        quiet: no progress output (the default from code).

    Returns:
        The :class:`Leaderboard` of the configuration this call ran, read back from the store.
    """
    config = _run_config(
        models,
        benchmark=str(benchmark),
        budget=budget,
        seeds=seeds,
        data_dir=Path(data_dir) if data_dir is not None else None,
        limit_train=limit_train,
        limit_test=limit_test,
        fixed_train_sample=fixed_train_sample,
        results_dir=Path(results_dir),
        registry_path=Path(registry) if registry is not None else None,
        benchmarks_dir=Path(benchmarks_dir) if benchmarks_dir is not None else None,
        force=force,
        isolate=isolate,
        quiet=quiet,
        latency_samples=latency_samples,
        save_model=save_model,
    )
    summary = run(config)
    if summary.board is not None:  # the leaderboard the run's report was drawn from: no second read of the store
        return summary.board
    return load_leaderboard(benchmark, results_dir, summary.configuration, benchmarks_dir=benchmarks_dir)


def run_suite(
    benchmarks: str | Sequence[str] | None = None,
    models: str | Sequence[str | ModelSpec | dict] = "all",
    *,
    suite: str | Path | None = None,
    data_root: str | Path | None = None,
    budget: str | None = None,
    seeds: int = 1,
    limit_train: int | None = None,
    limit_test: int | None = None,
    fixed_train_sample: bool = False,
    results_dir: str | Path = "results",
    registry: str | Path | None = None,
    benchmarks_dir: str | Path | None = None,
    force: bool = False,
    isolate: bool = True,
    quiet: bool = True,
    latency_samples: int = 50,
    save_model: bool = True,
) -> SuiteSummary:
    """Run several benchmarks with the same models and options, and write the summary across them.

    Args:
        benchmarks: benchmark names (a list or a comma-separated string); or None with ``suite``.
        suite: a suite name (``benchmarks/suites/<name>.yaml``) or a path to a suite YAML.
        data_root: a folder holding one data folder per benchmark (``<data_root>/<benchmark>``).
        models, budget, seeds, ...: as :func:`run_benchmark`.

    Returns:
        The :class:`~harness.suite.SuiteSummary`: ``table`` (a DataFrame, one row per model), ``outcomes`` (each
        benchmark's leaderboard or error) and ``path`` (the summary's markdown).
    """
    from harness import suite as suites
    from harness.core.errors import HarnessInputError

    if benchmarks is None and suite is None:
        raise HarnessInputError("run_suite", "no benchmarks given", "pass benchmarks=['sst5', ...] or suite='NAME'")
    names = benchmarks if benchmarks is None or isinstance(benchmarks, str) else ",".join(benchmarks)
    members = suites.resolve_suite(
        suite=str(suite) if suite is not None else None,
        benchmark=names,
        data_root=Path(data_root) if data_root is not None else None,
        data_dir=None,
        benchmarks_dir=Path(benchmarks_dir) if benchmarks_dir is not None else None,
    )
    config = _run_config(
        models,
        budget=budget,
        seeds=seeds,
        limit_train=limit_train,
        limit_test=limit_test,
        fixed_train_sample=fixed_train_sample,
        results_dir=Path(results_dir),
        registry_path=Path(registry) if registry is not None else None,
        benchmarks_dir=Path(benchmarks_dir) if benchmarks_dir is not None else None,
        force=force,
        isolate=isolate,
        quiet=quiet,
        latency_samples=latency_samples,
        save_model=save_model,
    )
    return suites.run_suite(members, config)


def load_leaderboard(
    benchmark: str,
    results_dir: str | Path = "results",
    configuration: str | None = None,
    *,
    benchmarks_dir: str | Path | None = None,
) -> Leaderboard:
    """The leaderboard of a configuration already in the store (default: the one the last run used)."""
    spec, _ = load_benchmark(str(benchmark), Path(benchmarks_dir) if benchmarks_dir is not None else None)
    return Leaderboard.from_store(ResultsStore(Path(results_dir)), spec, configuration)


def to_markdown(board: Leaderboard) -> str:
    """The leaderboard's text: its tables and captions (figures are written by :func:`write_report`)."""
    return render_markdown(board)


def write_report(board: Leaderboard, out_dir: str | Path) -> Path:
    """Write leaderboard.md/.csv/.json, plots and errors.md into ``out_dir``; returns the markdown path."""
    return write_leaderboard(board, Path(out_dir))


def _run_config(models, **options) -> RunConfig:
    names, entries = _split_models(models)
    return RunConfig(models=names, model_specs=entries, **options)


def _split_models(models) -> tuple[str, list[ModelSpec] | None]:
    if isinstance(models, str):
        return models, None
    names = [m for m in models if isinstance(m, str)]
    entries = [m if isinstance(m, ModelSpec) else ModelSpec.model_validate(m) for m in models if not isinstance(m, str)]
    return ",".join(names), entries or None
