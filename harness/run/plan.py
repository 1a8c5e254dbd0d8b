"""Time before work, for a whole command: what earlier runs in the store say before anything runs.

Each model's last measured training speed on this benchmark (from any configuration), scaled to this run's
examples; runs already finished are named as such. A run's own forecast, measured from its first steps, is
``harness.models.forecast``; what the run says with it is ``harness.run.forecast``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.run.forecast import minutes
from harness.run.job import Job
from harness.store.results_store import ResultsStore, StoredRun


@dataclass(frozen=True)
class PriorSpeed:
    """A model's last measured training speed in the store."""

    samples_per_second: float
    per_epoch: bool  # its examples count every epoch (transformers), or each row once (TF-IDF)
    device: str


@dataclass(frozen=True)
class Prior:
    """What the store says of a job before it runs: finished already, or its training seconds (None: never timed)."""

    done: bool = False
    seconds: float | None = None


def last_speeds(store: ResultsStore, benchmark: str) -> dict[str, PriorSpeed]:
    """Each model's last measured training speed in the store, from any configuration of the benchmark."""
    latest: dict[str, tuple[str, PriorSpeed]] = {}
    for configuration in store.configurations(benchmark):
        for run in store.iter_runs(benchmark, configuration.label, check_predictions=False):
            if not isinstance(run, StoredRun) or not run.result.completed:
                continue
            r = run.result
            if not (r.training.samples_per_second and r.device and r.environment):
                continue
            speed = PriorSpeed(r.training.samples_per_second, "epochs" in r.budget_fields_used, r.device.device_name)
            finished = r.environment.finished_at or ""
            if r.model not in latest or finished > latest[r.model][0]:
                latest[r.model] = (finished, speed)
    return {model: speed for model, (_, speed) in latest.items()}


def prior_seconds(jobs: list[Job], store: ResultsStore, speeds: dict[str, PriorSpeed], train, force: bool) -> list[Prior]:
    """Per job: already finished (skipped unless --force), or its training time at its model's last speed."""
    priors = []
    for job in jobs:
        # The result alone says whether the run will be skipped; its predictions are checked when it is.
        stored = None if force else store.load_result(job.run_dir(store))
        if stored is not None and stored.completed and stored.fingerprint == job.fingerprint:
            priors.append(Prior(done=True))
            continue
        speed = speeds.get(job.model)
        if speed is None:
            priors.append(Prior())
            continue
        keep = np.ones(len(train), dtype=bool)
        for column, values in (job.train_filter or {}).items():
            if column in train.groups:
                keep &= np.isin(train.groups[column], values)
        rows = int(keep.sum())
        budget = job.run_budget()
        if budget.max_steps:
            examples = budget.max_steps * budget.batch_size * budget.gradient_accumulation_steps
        else:
            examples = rows * (budget.epochs if speed.per_epoch else 1)
        seconds = examples / speed.samples_per_second
        priors.append(Prior(seconds=min(seconds, budget.max_seconds) if budget.max_seconds else seconds))
    return priors


def prior_lines(jobs: list[Job], priors: list[Prior], speeds: dict[str, PriorSpeed]) -> list[str]:
    """The time ahead as earlier runs measured it, per model and in total; never a guess."""
    by_model: dict[str, list[Prior]] = {}
    for job, prior in zip(jobs, priors, strict=True):
        by_model.setdefault(job.model, []).append(prior)
    lines = ["time ahead (training; from earlier runs in this store, else forecast by each run from its first steps):"]
    for model, runs in by_model.items():
        todo = [p for p in runs if not p.done]
        done = f", {len(runs) - len(todo)} already complete" if len(todo) < len(runs) else ""
        if not todo:
            lines.append(f"  {model}: {len(runs)} run(s), all complete")
        elif todo[0].seconds is None:
            lines.append(f"  {model}: {len(todo)} run(s){done}; never timed here, forecast from its first steps")
        else:
            speed = speeds[model]
            lines.append(f"  {model}: {len(todo)} run(s){done}, about {minutes(todo[0].seconds)} each at its last "
                         f"measured {speed.samples_per_second:,.0f} samples/s ({speed.device})")
    todo = [p for p in priors if not p.done]
    known = [p.seconds for p in todo if p.seconds is not None]
    if known and len(known) < len(todo):
        lines.append(f"  known so far: about {minutes(sum(known))} for {len(known)} of {len(todo)} run(s)")
    elif known:
        lines.append(f"  in total: about {minutes(sum(known))} for {len(todo)} run(s)")
    return lines
