"""The Python API: run a benchmark from code and get the leaderboard back as an object.

    >>> from harness import run_benchmark
    >>> board = run_benchmark("amazon_polarity", models=["tfidf-logreg"], data_dir="data/amazon_polarity")
    >>> board.to_pandas()            # one row per model and seed, every metric
    >>> print(board.to_markdown())

Models are registry names or :class:`~harness.config.ModelSpec` entries built in code (the same fields as a
``models_registry.yaml`` entry), so a notebook can try a model without editing YAML. Everything else behaves
as the command line does: the same store, the same skipping of finished runs, the same one-line errors
(raised as :class:`~harness.errors.HarnessInputError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.config import ModelSpec
from harness.leaderboard import Leaderboard
from harness.pipeline import RunConfig, run
from harness.registry import load_benchmark
from harness.store import ResultsStore


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
    names, entries = _split_models(models)
    config = RunConfig(
        models=names,
        model_specs=entries,
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
    return load_leaderboard(benchmark, results_dir, summary.configuration, benchmarks_dir=benchmarks_dir)


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


def _split_models(models) -> tuple[str, list[ModelSpec] | None]:
    if isinstance(models, str):
        return models, None
    names = [m for m in models if isinstance(m, str)]
    entries = [m if isinstance(m, ModelSpec) else ModelSpec.model_validate(m) for m in models if not isinstance(m, str)]
    return ",".join(names), entries or None
