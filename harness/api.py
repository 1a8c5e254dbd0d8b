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

import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config.options import RunOptions
from harness.config.registry import load_benchmark
from harness.core.errors import HarnessInputError
from harness.pipeline import run
from harness.report.board import Leaderboard
from harness.report.publish import render_markdown, write_leaderboard
from harness.store.results_store import ResultsStore

if TYPE_CHECKING:
    from harness.suite import SuiteSummary


def _takes_options(first: str):
    """Give a function the keyword arguments of :class:`RunOptions`: its signature (what ``help`` and editors
    show) lists every option with its default, ``first`` and ``models`` leading; the function takes them as
    ``**options`` and validates them with ``RunOptions``, so an unknown name is one line naming it."""

    def decorate(function):
        leading, rest = {}, []
        for declared in RunOptions.declared():
            name = first if declared.name == "benchmark" else declared.name
            if declared.name in ("benchmark", "models"):
                leading[declared.name] = inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                           default=declared.api_default, annotation=declared.annotation)
            else:
                rest.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=declared.api_default,
                                              annotation=declared.annotation))
        return_annotation = inspect.signature(function).return_annotation
        function.__signature__ = inspect.Signature([leading["benchmark"], leading["models"], *rest],
                                                 return_annotation=return_annotation)
        lines = [f"        {d.name} (default {d.api_default!r}, flag {d.option.flag}): {d.option.help}"
                 for d in RunOptions.declared() if d.name not in leading]
        heading = "Options (as the command line's flags):"
        function.__doc__ = f"{function.__doc__.rstrip()}\n\n    {heading}\n" + "\n".join(lines)
        return function

    return decorate


@_takes_options("benchmark")
def run_benchmark(benchmark=None, models="all", **options) -> Leaderboard:
    """Train and evaluate ``models`` on ``benchmark`` (skipping finished runs) and return the leaderboard.

    Args:
        benchmark: a benchmark name (``benchmarks/<name>.yaml``) or a path to a benchmark YAML; None: the
            command line's default (Amazon Polarity, or offline without ``data_dir`` the sample that ships).
        models: ``"all"``, a comma-separated string of registry names, or a list of names, ``ModelSpec``
            objects or dicts with the fields of a registry entry.
        **options: the fields of :class:`~harness.config.options.RunOptions` (listed below), under the same
            names and defaults as the command line's flags, except ``quiet`` (True from code).

    Returns:
        The :class:`Leaderboard` of the configuration this call ran.
    """
    config = RunOptions.validated({"benchmark": benchmark, "models": models, **options}, caller="run_benchmark")
    if config.is_suite:
        raise HarnessInputError("run_benchmark", "runs one benchmark",
                                "call run_suite for a suite or several benchmarks")
    config.one_benchmark()
    summary = run(config)
    if summary.board is not None:  # the leaderboard the run's report was drawn from: no second read of the store
        return summary.board
    return load_leaderboard(summary.benchmark, config.results_dir, summary.configuration,
                            benchmarks_dir=config.benchmarks_dir)


@_takes_options("benchmarks")
def run_suite(benchmarks=None, models="all", **options) -> SuiteSummary:
    """Run several benchmarks with the same models and options, and write the summary across them.

    Args:
        benchmarks: benchmark names (a list or a comma-separated string); or None with ``suite``.
        models: as :func:`run_benchmark`.
        **options: as :func:`run_benchmark`; ``suite`` names a suite (``benchmarks/suites/<name>.yaml`` or a
            path), ``data_root`` a folder holding one data folder per benchmark (``<data_root>/<benchmark>``).

    Returns:
        The :class:`~harness.suite.SuiteSummary`: ``table`` (a DataFrame, one row per model), ``outcomes`` (each
        benchmark's leaderboard or error) and ``path`` (the summary's markdown).
    """
    from harness import suite as suites

    if "benchmark" in options:
        raise HarnessInputError("run_suite(benchmark=...)", "not an option of run_suite", "pass benchmarks=[...]")
    config = RunOptions.validated({"benchmark": benchmarks, "models": models, **options}, caller="run_suite")
    if config.benchmark is None and config.suite is None:
        raise HarnessInputError("run_suite", "no benchmarks given", "pass benchmarks=['sst5', ...] or suite='NAME'")
    return suites.run_command(config)


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
