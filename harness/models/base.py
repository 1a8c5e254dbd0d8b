"""The one interface every model family implements."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from Python 3.12

from harness.config.schema import Budget, ModelSpec
from harness.data.loading import Split
from harness.store.results import TrainingForecast


class LossPoint(TypedDict):
    """One point of a loss curve: the mean training loss since the last point, after ``step`` optimizer steps."""

    step: int
    examples: int
    loss: float


class FitReport(BaseModel):
    """What every family's ``fit`` reports; a family's report adds its own figures (tokens, precision, threads).

    The runner stores it as the result's ``training`` block (``store.results.Training``), with the wall time.
    """

    model_config = ConfigDict(extra="forbid")

    examples_seen: int
    unique_examples: int
    optimizer_steps: int
    epochs_completed: float
    train_seconds: float
    samples_per_second: float | None = None
    loss_curve: list[LossPoint]
    stopped_by: str
    precision: dict[str, Any] | None = None  # how the training precision was chosen, where a family chooses one
    forecast: TrainingForecast | None = None

    @property
    def resolved_precision(self) -> str | None:
        """The precision trained in (fp32, bf16, fp16), or None for a family that has no such choice."""
        return self.precision.get("resolved") if self.precision is not None else None


@runtime_checkable
class TextClassifier(Protocol):
    """A model family. Besides the methods, the class declares what the rest of the harness asks of it:"""

    # The schema of the family's `params:` in a registry entry (a pydantic model), or None when it takes none.
    params_schema: ClassVar[type[BaseModel] | None]
    # The Budget fields it reads; the leaderboard and the model card describe its runs by these alone.
    budget_fields: ClassVar[tuple[str, ...]]
    # Whether an entry names weights to start from (`source:`); a family that trains from the data alone takes none.
    takes_source: ClassVar[bool]
    # The model card: the hub's `library_name`, and the "Use" section (how to load and run the saved model).
    card_library: ClassVar[str]
    card_usage: ClassVar[str]

    label_names: list[str]

    @classmethod
    def settings(cls, spec: ModelSpec, info: dict[str, Any]) -> dict[str, Any]:
        """The family's own settings for the leaderboard, from its entry and ``describe()``: what a reader needs
        to reproduce the model."""

    @classmethod
    def from_spec(cls, spec: ModelSpec, label_names: list[str]) -> TextClassifier:
        """A fresh, untrained model for a registry entry."""

    def fit(self, train: Split, budget: Budget, workdir: Path, show_progress: bool = True,
            on_forecast: Callable[[TrainingForecast, str], None] | None = None) -> FitReport:
        """Train under ``budget``; returns the training report (examples seen, steps, loss curve...).

        Before spending most of the time, call ``on_forecast`` once with the training time forecast from a
        measured start (first steps, a sample) and the setting in words; its own time is not training time.
        """

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Raw texts in, class probabilities out, shape (len(texts), K)."""

    def save(self, directory: Path) -> None:
        """Write everything needed to predict again into ``directory``."""

    @classmethod
    def load(cls, directory: Path) -> TextClassifier:
        """Load what ``save`` wrote."""

    def describe(self) -> dict:
        """Size facts for the leaderboard: parameters, dtype, device."""
