"""Time before work: each run forecasts its own training time from its first steps, before the rest is spent.

A forecast is never a guess from the model's name or the machine's flags. Every run measures itself, in its
own process, with the precision and threads it will train in:

- a transformer times a window of optimizer steps after its first one (the first pays one-off costs) and
  extrapolates by padded tokens, since a step's time follows the tokens it carries (MiniLM-L6 on 2 CPU cores:
  0.118 s a step at 16 x 16 tokens, 0.92 s at 16 x 128, within 3% of a straight line);
- TF-IDF + logistic regression fits on a 5% sample first and scales by rows.

Before anything runs, the command says what earlier runs in the store measured (each model's last speed on
this benchmark, scaled to this run's examples). Each run then prints its own forecast and, with what the
command knows of its later runs (their earlier measured speeds, or this run's own forecast for later seeds of
the same model), the time the command still needs. Above
``ADVISE_ABOVE_S`` it says how to cut the time; above ``ASK_ABOVE_S``, on a terminal, it asks before going on
(``--yes`` skips the question), once per command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.results import TrainingForecast

if TYPE_CHECKING:  # the runner imports this module: its types only for the checker
    from harness.runner import Job
    from harness.store import ResultsStore

ADVISE_ABOVE_S = 10 * 60
ASK_ABOVE_S = 30 * 60

# The step window: at least this many steps after the first, and at least this long, unless that would be
# more than MAX_SHARE of the run (a short run's forecast matters little; its window stays short).
MIN_STEPS = 3
MIN_SECONDS = 5.0
MAX_SHARE = 0.05


class RunDeclined(Exception):
    """The user answered no at the time estimate: nothing more runs; finished runs are kept."""


class StepForecaster:
    """Times the steps after the first and forecasts the whole training from them, once.

    Args:
        total_steps: the optimizer steps the run will take.
        start_step: where the run starts (0, or the step a resumed run goes on from).
        sync: makes the clock honest where work is queued asynchronously (``torch.cuda.synchronize``); called
            only at the window's two ends, never inside a step.
    """

    def __init__(self, total_steps: int, start_step: int = 0, sync: Callable[[], None] | None = None,
                 min_steps: int = MIN_STEPS, min_seconds: float = MIN_SECONDS, max_share: float = MAX_SHARE):
        self.total_steps = total_steps
        self.start_step = start_step
        self.sync = sync or (lambda: None)
        self.min_steps = min_steps
        self.min_seconds = min_seconds
        self.max_share = max_share
        self.window_start: float | None = None
        self.window_tokens = 0
        self.window_steps = 0
        self.done = total_steps - start_step <= 1 + min_steps  # nothing left to forecast after the window

    def add_tokens(self, tokens: int) -> None:
        """The padded tokens of a batch just trained (counted only inside the window)."""
        if self.window_start is not None:
            self.window_tokens += tokens

    def step_done(self, step: int, clock: Callable[[], float], remaining_tokens: Callable[[], float]) -> TrainingForecast | None:
        """After optimizer step ``step``; ``clock()`` gives the training seconds so far. A forecast once, else None.

        The clock is read after ``sync`` at the window's two ends, so queued device work is inside the window.
        ``remaining_tokens`` gives the padded tokens of the steps still to come (called once, at the forecast).
        """
        if self.done:
            return None
        if self.window_start is None:  # the first step of this process is done: the window opens
            self.sync()
            self.window_start = clock()
            self.first_step = step
            return None
        self.window_steps += 1
        long_enough = (clock() - self.window_start >= self.min_seconds
                       or self.window_steps >= self.max_share * self.total_steps)
        if self.window_steps < self.min_steps or not long_enough:
            return None
        self.sync()
        elapsed = clock()
        self.done = True
        seconds = elapsed - self.window_start
        rate = seconds / max(1, self.window_tokens)
        return TrainingForecast(
            seconds=round(elapsed + rate * remaining_tokens(), 3),
            spent_seconds=round(elapsed, 3),
            measured_steps=self.window_steps,
            measured_seconds=round(seconds, 3),
            basis=f"steps {self.first_step + 1}-{step} of {self.total_steps:,} took {seconds:.1f} s",
        )


def remaining_batch_tokens(epoch_tokens: np.ndarray, position: int, remaining_batches: int) -> float:
    """Padded tokens of the next ``remaining_batches`` batches: the rest of this epoch's order, then later
    epochs at this epoch's mean (their orders differ, their sums barely)."""
    here = epoch_tokens[position : position + remaining_batches]
    later = max(0, remaining_batches - len(here))
    return float(here.sum() + later * (epoch_tokens.mean() if len(epoch_tokens) else 0.0))


# ----- what earlier runs say, before anything runs ---------------------------------------------------------


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
    from harness.store import StoredRun

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


# ----- what the run says ---------------------------------------------------------------------------------------


class LaterRun(BaseModel):
    """A run the command starts after this one: its model, and its training seconds measured before (or None)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    seconds: float | None = None


class Outlook(BaseModel):
    """What a run knows of the rest of its command, to put its own forecast into the command's total."""

    model_config = ConfigDict(extra="forbid")

    later: list[LaterRun] = []
    ask: bool = False  # one run at a time from a terminal, without --yes: may ask above ASK_ABOVE_S
    answer_file: str | None = None  # the command's answer, kept so the question comes once
    budgets: list[str] = []  # the benchmark's other budget profiles, for the advice


def minutes(seconds: float) -> str:
    """A duration as people read it: 0.3 s, 84 s, 6.5 min."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def forecast_lines(model: str, forecast: TrainingForecast, outlook: Outlook | None, setting: str) -> tuple[list[str], float]:
    """The lines a run prints for its forecast, and the seconds the command still needs (this run included)."""
    lines = [f"  forecast: training about {minutes(forecast.seconds)} ({forecast.basis}; {setting})"]
    remaining = forecast.seconds - forecast.spent_seconds
    if outlook is None or not outlook.later:
        return lines, remaining
    # Later seeds of this model take what this run just measured, on this machine now; other models what
    # their earlier runs measured, where there were any.
    own = [r for r in outlook.later if r.model == model]
    known = [r.seconds for r in outlook.later if r.model != model and r.seconds is not None]
    unknown = [r for r in outlook.later if r.model != model and r.seconds is None]
    total = remaining + sum(known) + len(own) * forecast.seconds
    parts = [f"this run {minutes(remaining)}"]
    if known:
        parts.append(f"{len(known)} later run(s) {minutes(sum(known))} at their last measured speed")
    if own:
        parts.append(f"{len(own)} more seed(s) of {model} {minutes(len(own) * forecast.seconds)}")
    if unknown:
        parts.append(f"{len(unknown)} run(s) never timed here, each forecast when it starts")
    lines.append(f"  forecast: the command needs about {minutes(total)} more of training ({'; '.join(parts)})")
    return lines, total


def advice(outlook: Outlook | None) -> str:
    """How to cut the time: fewer rows, another of the benchmark's budgets (where it has others), fewer models."""
    other = f", another --budget ({', '.join(outlook.budgets)})" if outlook and outlook.budgets else ""
    return f"  to cut it: --limit-train N trains on N rows (time scales with rows){other}; --models picks fewer models"


def announce(model: str, forecast: TrainingForecast, outlook: Outlook | None, setting: str,
             show: bool = True, out: Callable[[str], None] = print, ask: Callable[[str], str] | None = None) -> None:
    """Print the forecast; above the thresholds advise, and ask on a terminal. Raises RunDeclined on a no."""
    lines, total = forecast_lines(model, forecast, outlook, setting)
    if total > ADVISE_ABOVE_S:
        lines.append(advice(outlook))
    asking = (total > ASK_ABOVE_S and outlook is not None and outlook.ask
              and not (outlook.answer_file and Path(outlook.answer_file).exists()) and sys.stdin.isatty())
    if show or asking:
        for line in lines:
            out(line)
    if not asking:
        return
    try:
        answer = (ask or input)(f"  about {minutes(total)} of training to go; go on? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise RunDeclined(f"declined at the forecast of {model}: about {minutes(total)} of training to go")
    if outlook.answer_file:
        try:
            Path(outlook.answer_file).write_text("yes\n")
        except OSError:  # the next run asks again: a nuisance, not a failure
            pass
