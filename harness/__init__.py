"""textclf-bench: a comparative benchmark for text classifiers.

The Python API (see ``harness.api``)::

    from harness import run_benchmark, run_suite, load_leaderboard
"""

__version__ = "0.2.0"

__all__ = ["__version__", "load_leaderboard", "run_benchmark", "run_suite"]


def __getattr__(name: str):
    # Imported on first use: `import harness` stays cheap for the worker processes and the CLI's --version.
    if name in ("run_benchmark", "run_suite", "load_leaderboard"):
        from harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
