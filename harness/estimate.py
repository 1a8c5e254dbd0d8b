"""Time before work: each run forecasts its own training time from its first steps, before the rest is spent.

A forecast is never a guess from the model's name or the machine's flags. Every run measures itself, in its
own process, with the precision and threads it will train in:

- a transformer times a window of optimizer steps after its first one (the first pays one-off costs) and
  extrapolates by padded tokens, since a step's time follows the tokens it carries (MiniLM-L6 on 2 CPU cores:
  0.118 s a step at 16 x 16 tokens, 0.92 s at 16 x 128, within 3% of a straight line);
- TF-IDF + logistic regression fits on a 5% sample first and scales by rows.

The run prints its forecast and, with what the command knows of its later runs (their earlier measured
speeds, or this run's own forecast for later seeds of the same model), the time the command still needs. Above
``ADVISE_ABOVE_S`` it says how to cut the time; above ``ASK_ABOVE_S``, on a terminal, it asks before going on
(``--yes`` skips the question), once per command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness.results import TrainingForecast

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

    def step_done(self, step: int, elapsed: float, remaining_tokens: Callable[[], float]) -> TrainingForecast | None:
        """After optimizer step ``step`` with ``elapsed`` seconds of training so far; a forecast once, else None.

        ``remaining_tokens`` gives the padded tokens of the steps still to come (called once, at the forecast).
        """
        if self.done:
            return None
        if self.window_start is None:  # the first step of this process is done: the window opens
            self.sync()
            self.window_start = elapsed
            self.first_step = step
            return None
        self.window_steps += 1
        seconds = elapsed - self.window_start
        long_enough = seconds >= self.min_seconds or self.window_steps >= self.max_share * self.total_steps
        if self.window_steps < self.min_steps or not long_enough:
            return None
        self.sync()
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
    budgets: list[str] = []  # the benchmark's budget profiles, for the advice


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
    smaller = f" or a smaller --budget ({', '.join(outlook.budgets)})" if outlook and outlook.budgets else " or a smaller --budget"
    return (f"  to cut it: --limit-train N trains on N rows (time scales with rows){smaller}; "
            f"--models picks fewer models")


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
