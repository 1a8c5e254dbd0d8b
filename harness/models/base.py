"""The one interface every model family implements."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from harness.config.schema import Budget, ModelSpec
from harness.data.loading import Split
from harness.store.results import TrainingForecast


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
            on_forecast: Callable[[TrainingForecast, str], None] | None = None) -> dict:
        """Train under ``budget``; returns a training report (examples seen, steps, loss curve...).

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
