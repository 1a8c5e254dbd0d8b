"""The transformer family's training loop, in the steps ``TransformerClassifier.fit`` reads top to bottom:

    prepare (tokenise, plan the steps) -> choose the precision -> prepare model, optimizer and scheduler
    -> resume -> for each epoch: for each batch: a step -> a checkpoint now and then -> finish (the report)

The pieces here know nothing of where weights come from or how they are saved; the model keeps those:
- ``TrainingData``: the train split tokenised once, and the optimizer steps it makes under the budget;
- ``TrainingState``: where a run stands (``harness_state.json`` in a checkpoint, these keys);
- ``TrainingLoop``: one batch's forward, backward and optimizer step, then the step's bookkeeping (loss
  points, the divergence check, the forecast, the stop);
- ``DeviceTally``: loss sums kept on the device, read every ``READ_EVERY_STEPS`` steps;
- ``TransformerFitReport``: what ``fit`` returns.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from harness.config.schema import Budget
from harness.core.errors import TrainingDiverged
from harness.metrics.cost import MFU_CONVENTION
from harness.metrics.machine import rebalance_threads
from harness.models.base import FitReport, LossPoint
from harness.models.batching import (
    BatchStream,
    HostBatch,
    TokenIds,
    build_host_batch,
    length_bucketed_batches,
    padded_width,
)
from harness.models.forecast import StepForecaster, remaining_batch_tokens
from harness.store.results import TrainingForecast

# A cross-entropy loss above this means the true class got probability < e^-50: the run has diverged.
EXPLODED_LOSS = 50.0
# Reading the loss from the device every step makes the host wait for the device; it is read this often.
READ_EVERY_STEPS = 50
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class DeviceTally:
    """Loss sums and the first non-finite or exploded step, kept on the device and read every few steps.

    Reading a device value makes the host wait for the device; doing it once per step keeps the GPU idle
    while the host prepares the next step. Here a step only queues work; ``read`` fetches every pending
    loss point and the divergence record in one transfer.
    """

    def __init__(self, device):
        self.device = device
        self.window = torch.zeros((), dtype=torch.float32, device=device)
        self.window_count = 0
        self.points: list[tuple[int, int, torch.Tensor]] = []
        self.first_bad_step = torch.full((), -1.0, dtype=torch.float32, device=device)
        self.first_bad_loss = torch.zeros((), dtype=torch.float32, device=device)

    def add(self, loss: torch.Tensor, step: int) -> None:
        loss = loss.detach().float()
        self.window += loss
        self.window_count += 1
        bad = ~torch.isfinite(loss) | (loss > EXPLODED_LOSS)
        new = bad & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(new, float(step), self.first_bad_step)
        self.first_bad_loss = torch.where(new, loss, self.first_bad_loss)

    def close_window(self, step: int, examples: int) -> None:
        """A loss-curve point: the mean loss since the last point (still on the device)."""
        self.points.append((step, examples, self.window / max(1, self.window_count)))
        self.window = torch.zeros((), dtype=torch.float32, device=self.device)
        self.window_count = 0

    def read(self, accelerator) -> tuple[list[LossPoint], tuple[int, float] | None]:
        """Loss-curve points since the last read and the first bad (step, loss) of any process, if any."""
        values = [p[2] for p in self.points] + [self.first_bad_loss, self.first_bad_step]
        packed = torch.stack(values).unsqueeze(0)
        if accelerator is not None and accelerator.num_processes > 1:
            packed = accelerator.gather(packed)
        rows = packed.cpu().tolist()
        points = [{"step": step, "examples": examples, "loss": float(np.mean([r[i] for r in rows]))}
                  for i, (step, examples, _) in enumerate(self.points)]
        self.points = []
        bad = [(int(r[-1]), r[-2]) for r in rows if r[-1] >= 0]
        return points, (min(bad) if bad else None)

    def window_state(self) -> tuple[float, int]:
        return float(self.window), self.window_count

    def restore_window(self, total: float, count: int) -> None:
        self.window = torch.tensor(total, dtype=torch.float32, device=self.device)
        self.window_count = count


def make_adamw(groups, learning_rate: float, device) -> torch.optim.Optimizer:
    """AdamW in one fused kernel where this torch has it for the device (CUDA, and CPU since torch 2.4),
    else the multi-tensor (foreach) form: both do the same update with far fewer launches than a loop."""
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.AdamW(groups, lr=learning_rate, foreach=True)


def optimizer_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on the weights; none on biases and normalisation weights."""
    return [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(NO_DECAY)], "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]


def set_deepspeed_batch(accelerator, budget: Budget, world: int) -> None:
    """There is no DataLoader for Accelerate to read DeepSpeed's micro-batch from ("auto" would raise at
    prepare): each process's share of the budget's global batch is the micro-batch."""
    if accelerator.state.deepspeed_plugin is None:
        return
    config = accelerator.state.deepspeed_plugin.deepspeed_config
    config["train_micro_batch_size_per_gpu"] = budget.batch_size // world
    config["gradient_accumulation_steps"] = budget.gradient_accumulation_steps
    config["train_batch_size"] = budget.batch_size * budget.gradient_accumulation_steps


def planned_steps(examples: int, budget: Budget) -> int:
    """The optimizer steps of the whole run: ``max_steps``, else the epochs' worth (at least one)."""
    batches_per_epoch = math.ceil(examples / budget.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // budget.gradient_accumulation_steps)
    return budget.max_steps or max(1, math.ceil(budget.epochs * steps_per_epoch))


@dataclass
class TrainingData:
    """The train split tokenised once, how its batches are built, and the optimizer steps of the run."""

    ids: TokenIds
    tokenize_seconds: float
    total_steps: int
    pad_id: int
    mask_4d: bool

    @property
    def lengths(self) -> np.ndarray:
        return self.ids.lengths


@dataclass
class TrainingState:
    """Where a run stands; a checkpoint's ``harness_state.json`` holds these keys (plus the budget), so a
    resumed run goes on from the same step, batch and loss window."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    examples: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    loss_curve: list[LossPoint] = field(default_factory=list)
    train_seconds: float = 0.0  # the training clock when the state was saved
    window_sum: float = 0.0  # the loss window not yet closed into a point
    window_count: int = 0
    precision: Any = None  # how the precision was chosen (a resumed run keeps it)

    def to_marker(self, budget: Budget) -> dict:
        """The checkpoint marker's content: these fields in order, then the budget they belong to."""
        return {**asdict(self), "budget": budget.model_dump()}

    @classmethod
    def from_marker(cls, saved: dict) -> TrainingState:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in saved.items() if key in known})

    def add_batch(self, host: HostBatch, position: int) -> None:
        self.examples += host.examples
        self.real_tokens += host.real_tokens
        self.padded_tokens += host.padded_tokens
        self.batch_in_epoch = position + 1

    def next_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0


class TransformerFitReport(FitReport):
    """What a transformer's ``fit`` reports, beyond every family's figures."""

    tokenize_seconds: float
    warmup_seconds: float
    real_tokens: int
    padded_tokens: int
    padding_fraction: float
    tokens_per_second: float | None = None
    mfu: float | None = None
    mfu_convention: str = MFU_CONVENTION
    loss_read_every_steps: int
    resumed_from_step: int | None = None
    threads: dict[str, Any]
    processes: int


def setting_in_words(precision: dict, threads: dict, device) -> str:
    """The precision (and threads on a CPU) and why, as the forecast's question shows them."""
    if device.type == "cpu":
        return f"{precision['resolved']}, {threads['intra_op']} thread(s): {precision['reason']}"
    return f"{precision['resolved']}: {precision['reason']}"


class TrainingLoop:
    """The prepared model, optimizer and scheduler stepping through the seeded batches of each epoch.

    Nothing here depends on timing or on a resume: the examples, their order (fixed by the seed and the
    epoch) and the number of steps are those of an uninterrupted run. The training clock starts at
    ``clock_start``; a forecast question's wait is taken off it.
    """

    def __init__(self, accelerator, model, optimizer, scheduler, *, data: TrainingData, budget: Budget,
                 state: TrainingState, clock_start: float, setting: str, progress,
                 on_forecast: Callable[[TrainingForecast, str], None] | None = None):
        self.accelerator, self.model, self.optimizer, self.scheduler = accelerator, model, optimizer, scheduler
        self.data, self.budget, self.state = data, budget, state
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.tally = DeviceTally(accelerator.device)
        self.tally.restore_window(state.window_sum, state.window_count)  # a resumed run's open loss window
        cuda = accelerator.device.type == "cuda"
        self.forecaster = StepForecaster(data.total_steps, state.step, sync=torch.cuda.synchronize if cuda else None)
        self.forecast: TrainingForecast | None = None
        self.setting, self.on_forecast, self.progress = setting, on_forecast, progress
        self.clock_start = clock_start
        self.elapsed = 0.0
        self.log_every = max(1, data.total_steps // 100)
        self.stopped_by = "steps" if budget.max_steps else "epochs"
        self.done = state.step >= data.total_steps
        self.order: list = []
        model.train()
        self.last_checkpoint = time.perf_counter()

    def batch_tokens(self, rows) -> int:
        """A batch's padded tokens as the forecast counts them: the whole batch, all processes together."""
        return padded_width(int(self.data.lengths[rows].max()), self.budget.max_length) * len(rows)

    def epoch_batches(self) -> BatchStream:
        """This epoch's batches (the order fixed by the seed and the epoch), from where the state stands."""
        order = self.order = length_bucketed_batches(self.data.lengths, self.budget.batch_size,
                                                     seed=self.budget.seed + self.state.epoch)
        data, world, rank, max_length = self.data, self.world, self.rank, self.budget.max_length

        def make(position: int) -> HostBatch:
            return build_host_batch(data.ids, order[position], order, world, rank, data.pad_id, max_length, data.mask_4d)

        return BatchStream(make, len(order), self.state.batch_in_epoch, self.accelerator.device)

    def train_batch(self, position: int, host: HostBatch, batch: dict) -> bool:
        """Forward and backward on one batch; at the end of an accumulation the optimizer steps (True then)."""
        accelerator, model, g = self.accelerator, self.model, self.budget.gradient_accumulation_steps
        sync = (position + 1) % g == 0 or position + 1 == len(self.order)
        with contextlib.nullcontext() if sync or self.world == 1 else accelerator.no_sync(model):
            loss = model(**batch).loss
            accelerator.backward(loss / g if g > 1 else loss)
        if sync:
            accelerator.clip_grad_norm_(model.parameters(), self.budget.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.tally.add(loss, self.state.step + 1)
        if not self.forecaster.done:  # counted only until the forecast is made
            self.forecaster.add_tokens(self.batch_tokens(self.order[position]))
        self.state.add_batch(host, position)
        return sync

    def end_step(self, position: int) -> None:
        """After an optimizer step: a loss point now and then, the loss read every READ_EVERY_STEPS steps,
        the forecast once, and whether the run is done (its steps, or its seconds)."""
        state, total = self.state, self.data.total_steps
        state.step += 1
        self.progress.update(1)
        if state.step % self.log_every == 0 or state.step == total:
            self.tally.close_window(state.step, state.examples)
        if state.step % READ_EVERY_STEPS == 0:
            self.read()
        self.elapsed = time.perf_counter() - self.clock_start
        rebalance_threads()  # other commands' runs that started or ended meanwhile change this run's part
        self._forecast(position)
        if state.step >= total:
            self.done = True
        elif self.budget.max_seconds and self.elapsed >= self.budget.max_seconds:
            self.done, self.stopped_by = True, "max_seconds"

    def _forecast(self, position: int) -> None:
        g, start, order, state = self.budget.gradient_accumulation_steps, self.clock_start, self.order, self.state
        made = self.forecaster.step_done(
            state.step, lambda: time.perf_counter() - start,
            lambda: remaining_batch_tokens(np.array([self.batch_tokens(b) for b in order]), position + 1,
                                           (self.data.total_steps - state.step) * g),
        )
        if made is None:
            return
        self.forecast = made
        if self.on_forecast is not None and self.accelerator.is_main_process:
            asked = time.perf_counter()
            self.progress.clear()
            self.on_forecast(made, self.setting)
            self.progress.refresh()
            self.clock_start += time.perf_counter() - asked  # a question's wait is not training time

    def read(self) -> None:
        """Fetch the pending loss points; a non-finite or exploded loss stops the run, naming its step."""
        points, bad = self.tally.read(self.accelerator)
        self.state.loss_curve.extend(points)
        if points:
            self.progress.set_postfix(loss=f"{points[-1]['loss']:.4f}")
        if bad is not None:
            step, value = bad
            raise TrainingDiverged(
                f"loss became {value:.4g} at step {step}; stopped instead of training on garbage "
                f"(lower learning_rate, currently {self.budget.learning_rate}); noticed at step {self.state.step}, "
                f"the loss is read every {READ_EVERY_STEPS} steps"
            )

    def checkpoint_due(self, every_s: float) -> bool:
        return time.perf_counter() - self.last_checkpoint >= every_s

    def state_to_save(self) -> TrainingState:
        """The state with every loss point read, the clock and the open loss window in it."""
        self.read()
        self.state.train_seconds = self.elapsed
        self.state.window_sum, self.state.window_count = self.tally.window_state()
        return self.state

    def checkpoint_saved(self) -> None:
        self.last_checkpoint = time.perf_counter()

    def close(self) -> float:
        """The last loss points read, the bar closed, every process at the end; the training seconds."""
        self.read()
        self.progress.close()
        self.accelerator.wait_for_everyone()
        return time.perf_counter() - self.clock_start

    def report(self, seconds: float, *, warmup_seconds: float, resumed_from_step: int | None, threads: dict,
               mfu: float | None) -> TransformerFitReport:
        state, unique = self.state, len(self.data.ids)
        return TransformerFitReport(
            examples_seen=state.examples,
            unique_examples=unique,
            optimizer_steps=state.step,
            epochs_completed=state.examples / unique,
            train_seconds=seconds,
            tokenize_seconds=self.data.tokenize_seconds,
            warmup_seconds=warmup_seconds,
            samples_per_second=state.examples / seconds if seconds else None,
            real_tokens=state.real_tokens,
            padded_tokens=state.padded_tokens,
            padding_fraction=1 - state.real_tokens / max(1, state.padded_tokens),
            tokens_per_second=state.real_tokens / seconds if seconds else None,
            mfu=mfu,
            loss_curve=state.loss_curve,
            loss_read_every_steps=READ_EVERY_STEPS,
            stopped_by=self.stopped_by,
            resumed_from_step=resumed_from_step,
            precision=state.precision,
            threads=threads,
            forecast=self.forecast,
            processes=self.world,
        )
