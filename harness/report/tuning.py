"""The tuning studies of a leaderboard's runs, as the report reads them: curves, selections, the leader.

Each completed run whose result carries a ``tuning`` block (``store.results.TuningRecord``) is one model and
seed's study: its completed trials' validation scores give that seed's expected-best curve
(``metrics.expected_max``), its seeds' curves give the model's, and the models' curves say which model leads
after n trials. :func:`expected_validation` is None when no run carries a study, so an untuned leaderboard
shows nothing of this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.metrics import expected_max
from harness.metrics.columns import column
from harness.store.results import RunResult, TrialRecord, TuningRecord

NARROWED = "†"  # the mark of a model whose entry narrowed the benchmark's search space


@dataclass(frozen=True)
class SeedStudy:
    """One model and seed's study: its record, its completed trials' scores and their curve (None: none)."""

    seed: int
    record: TuningRecord
    scores: list[float]
    curve: expected_max.Curve | None

    @property
    def selected(self) -> TrialRecord | None:
        return next((t for t in self.record.trials if t.number == self.record.selected), None)


@dataclass(frozen=True)
class ModelStudy:
    model: str
    seeds: list[SeedStudy]
    curve: expected_max.Curve | None  # the seeds' curves averaged (None: no completed trial at all)

    @property
    def narrowed(self) -> bool:
        return any(s.record.narrowed for s in self.seeds)

    @property
    def shown(self) -> str:
        """The model's name as the section, the plot and the page show it: marked when its space was narrowed."""
        return self.model + (f" {NARROWED}" if self.narrowed else "")


@dataclass(frozen=True)
class ExpectedValidation:
    """Every tuned model of a leaderboard (in its order), the shared trial count and who leads at each n."""

    models: list[ModelStudy]
    trials: int
    metrics: list[str]  # the metric names the studies selected on (one when comparable)
    direction: expected_max.Direction
    validation: list[str]  # the validation-set lines, as the studies stated them
    samplers: list[str]
    leader_at: list[str]  # the leader at n = 1 .. trials; empty when the studies are not comparable

    @property
    def metric_label(self) -> str:
        labels = []
        for name in self.metrics:
            try:
                labels.append(column(name).label)
            except ValueError:  # a metric outside the catalogue (added by YAML): its own name
                labels.append(name)
        return " / ".join(labels)

    @property
    def comparable(self) -> bool:
        return bool(self.leader_at)

    def settled_from(self) -> int | None:
        return expected_max.settled_from(self.leader_at) if self.leader_at else None


def _scores(record: TuningRecord) -> list[float]:
    return [
        float(t.validation_score)
        for t in record.trials
        if t.status == "completed" and t.validation_score is not None and math.isfinite(t.validation_score)
    ]


def _model_study(model: str, results: list[RunResult], trials: int) -> ModelStudy:
    seeds = []
    for result in sorted(results, key=lambda r: r.seed):
        scores = _scores(result.tuning)
        direction = result.tuning.direction
        seed_curve = expected_max.curve(scores, trials, direction) if scores else None
        seeds.append(SeedStudy(result.seed, result.tuning, scores, seed_curve))
    curves = [s.curve for s in seeds if s.curve is not None]
    return ModelStudy(model, seeds, expected_max.over_seeds(curves) if curves else None)


def expected_validation(results_by_model: dict[str, list[RunResult]]) -> ExpectedValidation | None:
    """The studies of ``results_by_model`` (model -> its completed runs, in leaderboard order); None untuned."""
    tuned = {m: [r for r in rs if r.tuning is not None] for m, rs in results_by_model.items()}
    tuned = {m: rs for m, rs in tuned.items() if rs}
    if not tuned:
        return None
    records = [r.tuning for rs in tuned.values() for r in rs]
    # Every model gets the same budget; were one planned shorter, its curve still runs to the longest plan
    # (draws are with replacement) and its trial counts in the selection table say so.
    trials = max(max(r.trials_planned for r in records), max(len(r.trials) for r in records), 1)
    models = [_model_study(m, rs, trials) for m, rs in tuned.items()]
    targets = sorted({(r.metric, r.direction) for r in records})
    curves = {s.model: s.curve for s in models if s.curve is not None}
    # Curves of studies that selected on different metrics do not rank against each other.
    leader_at = expected_max.leaders(curves, targets[0][1]) if len(targets) == 1 and curves else []
    return ExpectedValidation(
        models=models,
        trials=trials,
        metrics=sorted({m for m, _ in targets}),
        direction=targets[0][1],
        validation=sorted({r.validation for r in records}),
        samplers=sorted({r.sampler for r in records}),
        leader_at=leader_at,
    )
