"""textclf-bench: a comparative benchmark for text classifiers.

The Python API (see ``harness.api``)::

    from harness import run_benchmark, run_suite, load_leaderboard, to_markdown, write_report
"""

from harness.core.version import __version__

__all__ = ["__version__", "load_leaderboard", "run_benchmark", "run_suite", "to_markdown", "write_report"]


def __getattr__(name: str):
    # Imported on first use: `import harness` stays cheap for the worker processes and the CLI's --version.
    if name in ("run_benchmark", "run_suite", "load_leaderboard", "to_markdown", "write_report"):
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
