"""Metrics a benchmark declares in its YAML (``extra_metrics``), computed by ``evaluate`` modules.

Each becomes a :class:`~harness.metrics.columns.MetricColumn` like the catalogue's, computed at report time on a
run's stored predictions (``predictions`` the arg-max class indices, ``references`` the true ones, plus the
declared ``args``), so declaring one never reruns a model. A local module (a ``.py`` script, or the folder
holding ``<name>/<name>.py``) loads offline; a hub id (``accuracy``, ``org/metric``) only where the hub is
reachable. ``evaluate`` is imported only when a benchmark declares such a metric (the import takes seconds).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessInputError
from harness.metrics.columns import MetricColumn, columns


@functools.cache
def load_module(module: str, where: str):
    """The evaluate module at a path or hub id, loaded once per process; a one-line error when it cannot be."""
    try:
        import evaluate
    except ImportError:
        raise HarnessInputError(where, "extra_metrics need the evaluate package", "pip install evaluate") from None
    local = Path(module).is_absolute()
    try:
        return evaluate.load(module)
    except Exception as exc:  # noqa: BLE001 - whatever evaluate raises, the user reads one line
        reason = " ".join(str(exc).split())[:200]
        fix = ("give the path of a module script (metric.py) or of the folder holding <name>/<name>.py" if local else
               "the hub is out of reach or has no such module: download it once and give its local path as module")
        raise HarnessInputError(where, f"cannot load evaluate module {module!r} ({type(exc).__name__}: {reason})",
                                fix) from None


def _pick(result: Any, name: str, key: str | None, where: str) -> float | None:
    """The one number of compute()'s result that is this metric."""
    if not isinstance(result, dict):
        raise HarnessInputError(where, f"compute() returned {type(result).__name__}, not a mapping", "check the module")
    if key is None:
        key = next(iter(result)) if len(result) == 1 else name
    if key not in result:
        raise HarnessInputError(where, f"compute() returned {sorted(result)}, no {key!r}", "name the entry with key:")
    value = result[key]
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HarnessInputError(where, f"compute()[{key!r}] is {value!r}, not a number",
                                "choose a scalar entry with key:") from None
    return number if math.isfinite(number) else None


def evaluate_column(
    name: str, module: str, *, args: dict | None = None, key: str | None = None, label: str | None = None,
    higher_is_better: bool = True, digits: int = 4, where: str | None = None,
) -> MetricColumn:
    """A column computed by an evaluate module: shown in the leaderboard's table and in the CSV/JSON records."""
    where = where or f"extra metric '{name}'"
    arguments = dict(args or {})

    def compute(y_true, y_pred, y_prob, num_labels):
        metric = load_module(module, where)
        try:
            result = metric.compute(predictions=y_pred.tolist(), references=y_true.tolist(), **arguments)
        except Exception as exc:  # noqa: BLE001 - a wrong argument in the YAML: one line, not a traceback
            reason = " ".join(str(exc).split())[:200]
            raise HarnessInputError(where, f"compute() failed ({type(exc).__name__}: {reason})",
                                    "check its args in the benchmark YAML") from None
        return _pick(result, name, key, where)

    return MetricColumn(
        name, label or name, compute, f"{module} (evaluate), computed on the stored predictions",
        higher_is_better=higher_is_better, digits=digits, interval=None, table=True, export=True, suite=False,
    )


def extra_columns(spec: Any) -> list[MetricColumn]:
    """A benchmark's ``extra_metrics`` (``spec``: its BenchmarkSpec) as metric columns, computed by their
    evaluate modules."""
    return [
        evaluate_column(m.name, m.module, args=m.args, key=m.key, label=m.label, higher_is_better=m.higher_is_better,
                        digits=m.digits, where=f"benchmark '{spec.name}' [extra_metrics '{m.name}']")
        for m in spec.extra_metrics
    ]


def main_column(spec: Any, extra: list[MetricColumn] | None = None) -> MetricColumn:
    """The column a benchmark ranks by and selects trials by (``main_metric``): of the catalogue, or one of its
    extra metrics (``extra``: its columns, when already made)."""
    extra = extra_columns(spec) if extra is None else extra
    for candidate in [*columns(), *extra]:
        if candidate.name == spec.main_metric:
            return candidate
    known = [c.name for c in [*columns(), *extra]]
    raise HarnessInputError(f"benchmark '{spec.name}'", f"field 'main_metric': {spec.main_metric!r} is not a metric",
                            f"use one of {', '.join(known)}, or declare it under extra_metrics")
