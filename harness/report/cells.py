"""How a number reads in a report: one formatter per kind of value, shared by every section and renderer.

Each returns text (``n/a`` for a missing or non-finite value); the sections put these strings into their tables.
"""

from __future__ import annotations

import math

import numpy as np

from harness.config.schema import Budget


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def mean_std(values: list, digits: int = 4) -> str:
    """Mean ± sample std over seeds; one value alone; ``n/a`` for none."""
    vals = [v for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return fmt(vals[0], digits)
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def count(value) -> str:
    """A parameter count people can read: 43.7k, 22.7M."""
    if value is None:
        return "n/a"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return str(int(value))


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def p_value(value, floor: float | None = None) -> str:
    """A p-value; at the resampling floor it says so instead of printing the floor as a finding."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if floor is not None and value <= floor * 1.0000001:
        return f"<{floor * 1.0001:.0e} (resampling floor)"
    if value < 1e-4:
        return f"{value:.1e}"
    return f"{value:.4f}" if value < 0.001 else f"{value:.3f}"


def rank(value: float) -> str:
    """A rank: whole, half (a tie of two) or to two decimals."""
    if float(value).is_integer():
        return f"{value:g}"
    return f"{value:.1f}" if float(value * 2).is_integer() else f"{value:.2f}"


def interval(point: float, low: float, high: float, digits: int = 3) -> str:
    """``point [low, high]``; the point alone without a finite interval; ``n/a`` without a point."""
    if not math.isfinite(point):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def budget_text(budget: Budget, fields: list[str] | None = None) -> str:
    keys = ("train_examples", "test_examples", "epochs", "max_steps", "max_seconds", "max_length", "batch_size",
            "eval_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_ratio",
            "precision")
    values = budget.model_dump()
    return ", ".join(f"{k}={values[k]}" for k in keys if values.get(k) is not None and (fields is None or k in fields))
