"""The expected best validation score after n hyper-parameter trials, and its spread.

Dodge, Gururangan, Card, Schwartz and Smith, "Show Your Work: Improved Reporting of Experimental Results",
EMNLP 2019 (https://aclanthology.org/D19-1224/), section 3: given the validation scores of N trials of one
search, draw n of them with replacement from their empirical distribution and keep the best. With the scores
sorted from worst to best, v_(1) <= ... <= v_(N),

    P(best of n = v_(i)) = (i/N)^n - ((i-1)/N)^n
    E[best of n]         = sum_i v_(i) P_i
    Var[best of n]       = sum_i v_(i)^2 P_i - E^2          (computed as sum_i P_i (v_(i) - E)^2: never < 0)

Tied scores need no care: their positions' probabilities add up to the mass of the tied value. For a metric that
is minimised, "best" is the minimum: the same formula over the scores sorted from the largest to the smallest.

Pure arithmetic on lists of floats; the report (``harness.report.tuning``) feeds it the stored trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Curve:
    """The expected best score and its standard deviation after n = 1 .. ``len(expected)`` trials."""

    expected: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def trials(self) -> int:
        return len(self.expected)

    def at(self, n: int) -> tuple[float, float]:
        """(expected best, its standard deviation) after ``n`` trials (1-based)."""
        return self.expected[n - 1], self.std[n - 1]


def _ordered(scores, direction: Direction) -> np.ndarray:
    values = np.asarray([float(s) for s in scores], dtype=float)
    if values.size == 0:
        raise ValueError("no trial scores: the expected best of no trial is not defined")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"trial scores must be finite numbers, got {scores!r}")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    ordered = np.sort(values)  # worst to best when the metric is maximised
    return ordered if direction == "maximize" else ordered[::-1]


def expected_best(scores, n: int, direction: Direction = "maximize") -> tuple[float, float]:
    """The expected best of ``n`` trials drawn with replacement from ``scores``, and its standard deviation."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    v = _ordered(scores, direction)
    size = v.size
    i = np.arange(1, size + 1, dtype=float)
    p = (i / size) ** n - ((i - 1) / size) ** n
    mean = float(np.sum(v * p))
    variance = float(np.sum(p * (v - mean) ** 2))
    return mean, math.sqrt(max(variance, 0.0))


def curve(scores, trials: int, direction: Direction = "maximize") -> Curve:
    """:func:`expected_best` for n = 1 .. ``trials`` (n may exceed ``len(scores)``: draws are with replacement)."""
    points = [expected_best(scores, n, direction) for n in range(1, trials + 1)]
    return Curve(tuple(m for m, _ in points), tuple(s for _, s in points))


def over_seeds(curves: list[Curve]) -> Curve:
    """One model's curve from its seeds' curves: the expected best of n trials of a seed's study, the seed drawn
    at random. The mean is the average of the seeds' expected bests; the spread is that draw's standard deviation
    (law of total variance: the seeds' own variances averaged, plus the spread of their means), so a model
    whose seeds disagree shows it.

    Averaged rather than pooled: each seed ran a study of its own (its own validation rows when they are carved
    from train per seed, its own training noise), and "n trials" means n trials of one study. Pooling the seeds'
    trials into one distribution would draw a best from trials no single study ran, and would hide the seeds'
    disagreement inside a wider distribution of trials.
    """
    if not curves:
        raise ValueError("no seed curves to average")
    trials = {c.trials for c in curves}
    if len(trials) != 1:
        raise ValueError(f"seed curves of different lengths {sorted(trials)}")
    expected = np.array([c.expected for c in curves])
    std = np.array([c.std for c in curves])
    mean = expected.mean(axis=0)
    variance = (std**2).mean(axis=0) + ((expected - mean) ** 2).mean(axis=0)
    return Curve(tuple(float(m) for m in mean), tuple(float(math.sqrt(v)) for v in variance))


def leaders(curves: dict[str, Curve], direction: Direction = "maximize") -> list[str]:
    """The model with the best expected score at each n = 1 .. N (an exact tie: the first name in sorted order)."""
    if not curves:
        return []
    trials = {c.trials for c in curves.values()}
    if len(trials) != 1:
        raise ValueError(f"curves of different lengths {sorted(trials)}")
    sign = 1.0 if direction == "maximize" else -1.0
    return [
        min(sorted(curves), key=lambda model: -sign * curves[model].expected[n])
        for n in range(trials.pop())
    ]


def settled_from(leader_at: list[str]) -> int:
    """The smallest n from which the leader is the one at N for every larger n (N when it changed at N).

    1 means one model leads at every n; ``len(leader_at)`` with more than one n means the lead still changed at N.
    """
    if not leader_at:
        raise ValueError("no leaders")
    n = len(leader_at)
    while n > 1 and leader_at[n - 2] == leader_at[-1]:
        n -= 1
    return n
