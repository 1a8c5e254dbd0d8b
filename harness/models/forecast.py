"""A run's own training-time forecast, measured from its first optimizer steps.

A forecast is never a guess from the model's name or the machine's flags: the training loop times a window of
optimizer steps after its first one (the first pays one-off costs) and extrapolates by padded tokens, since a
step's time follows the tokens it carries (MiniLM-L6 on 2 CPU cores: 0.118 s a step at 16 x 16 tokens, 0.92 s
at 16 x 128, within 3% of a straight line). What the run then says with it lives in ``harness.run.forecast``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.store.results import TrainingForecast

# The step window: at least this many steps after the first, and at least this long, unless that would be
# more than MAX_SHARE of the run (a short run's forecast matters little; its window stays short).
MIN_STEPS = 3
MIN_SECONDS = 5.0
MAX_SHARE = 0.05


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
