"""What a run says of its time: its own forecast (measured in ``harness.models.forecast``) and the command's
total with the runs still to come.

Above ``ADVISE_ABOVE_S`` it says how to cut the time; above ``ASK_ABOVE_S``, on a terminal, it asks before
going on (``--yes`` skips the question), once per command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness.store.results import TrainingForecast

ADVISE_ABOVE_S = 10 * 60
ASK_ABOVE_S = 30 * 60


class RunDeclined(Exception):
    """The user answered no at the time estimate: nothing more runs; finished runs are kept."""


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
    # Later seeds and trials of this model take what this run just measured, on this machine now; other models what
    # their earlier runs measured, where there were any.
    own = [r for r in outlook.later if r.model == model]
    known = [r.seconds for r in outlook.later if r.model != model and r.seconds is not None]
    unknown = [r for r in outlook.later if r.model != model and r.seconds is None]
    total = remaining + sum(known) + len(own) * forecast.seconds
    parts = [f"this run {minutes(remaining)}"]
    if known:
        parts.append(f"{len(known)} later run(s) {minutes(sum(known))} at their last measured speed")
    if own:
        parts.append(f"{len(own)} more run(s) of {model} (seeds or trials) {minutes(len(own) * forecast.seconds)}")
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
