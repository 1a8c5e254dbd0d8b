"""A chance baseline: scikit-learn's DummyClassifier, which never reads the texts.

``most_frequent`` always answers the train split's most frequent class (its accuracy is that class's share of
the evaluation split); ``stratified`` draws each answer at random with the train split's class frequencies,
from the run's seed. A leaderboard row of either says what a model scores by knowing the labels alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.dummy import DummyClassifier

from harness.config.schema import MAX_SEED, Budget, Integer, ModelSpec, Strict
from harness.data.loading import Split
from harness.models import saved
from harness.models.base import FitReport
from harness.store.results import TrainingForecast

CONFIG_FILE = "majority_config.json"

_USAGE = """This is a chance baseline (scikit-learn's DummyClassifier): it predicts from the train split's class
counts alone and never reads the text. It is saved as plain JSON (no pickle); load it with the harness:

```python
from harness.run.predict import predict_texts
predict_texts("<this directory>", ["some text"])
```"""


class MajorityParams(Strict):
    """A majority entry's `params:`."""

    strategy: Literal["most_frequent", "stratified"] = "most_frequent"


class SavedMajority(BaseModel):
    """``majority_config.json`` as ``save`` writes it: the class counts seen in training, checked on load."""

    model_config = ConfigDict(extra="forbid")

    label_names: list[str] = Field(min_length=2)
    params: MajorityParams
    seed: Integer = Field(ge=0, le=MAX_SEED)
    class_counts: dict[int, Integer] = Field(min_length=1, description="class index -> train rows of that class")


class MajorityClassifier:
    # Training reads the class counts of the (sampled) train rows, and stratified answers draw from the seed.
    budget_fields = ("train_examples", "test_examples", "seed", "eval_batch_size")
    params_schema = MajorityParams
    takes_source = False
    card_library = "scikit-learn"
    card_usage = _USAGE

    def __init__(self, params: MajorityParams, label_names: list[str]):
        self.params = params
        self.label_names = list(label_names)
        self.dummy: DummyClassifier | None = None
        self.seed = 0
        self.class_counts: dict[int, int] = {}

    @classmethod
    def from_spec(cls, spec: ModelSpec, label_names: list[str]) -> MajorityClassifier:
        return cls(MajorityParams.model_validate(spec.params or {}), label_names)

    @classmethod
    def settings(cls, spec: ModelSpec, info: dict) -> dict:
        return MajorityParams.model_validate(spec.params or {}).model_dump()

    def _fit(self, labels: np.ndarray, seed: int) -> None:
        # DummyClassifier reads no feature: one constant column stands for the texts.
        self.seed = int(seed)
        classes, counts = np.unique(labels, return_counts=True)
        self.class_counts = {int(c): int(n) for c, n in zip(classes, counts, strict=True)}
        self.dummy = DummyClassifier(strategy=self.params.strategy, random_state=self.seed)
        self.dummy.fit(np.zeros((len(labels), 1)), labels)

    def fit(self, train: Split, budget: Budget, workdir: Path, show_progress: bool = True,
            on_forecast: Callable[[TrainingForecast, str], None] | None = None) -> FitReport:
        # Counting classes takes no time worth forecasting: no forecast is made.
        start = time.perf_counter()
        self._fit(np.asarray(train.labels), budget.seed)
        seconds = time.perf_counter() - start
        return FitReport(
            forecast=None,
            examples_seen=len(train),
            unique_examples=len(train),
            epochs_completed=1.0,
            optimizer_steps=0,
            train_seconds=seconds,
            samples_per_second=len(train) / seconds if seconds > 0 else None,
            loss_curve=[],
            stopped_by="converged",
        )

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        assert self.dummy is not None, "fit or load the model first"
        probs = self.dummy.predict_proba(np.zeros((len(texts), 1)))
        # A class absent from train has no column: put it back as probability 0 so shapes always match K.
        full = np.zeros((len(texts), len(self.label_names)), dtype=np.float64)
        full[:, self.dummy.classes_] = probs
        return full

    def save(self, directory: Path) -> None:
        assert self.dummy is not None, "fit the model first"
        meta = {
            "label_names": self.label_names,
            "params": self.params.model_dump(),
            "seed": self.seed,
            "class_counts": self.class_counts,
        }
        (Path(directory) / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> MajorityClassifier:
        path = Path(directory) / CONFIG_FILE
        try:
            meta = SavedMajority.model_validate_json(saved.read_text_file(path))
        except ValidationError as exc:
            raise saved.first_error(path, exc) from None
        bad = [c for c, n in meta.class_counts.items() if not 0 <= c < len(meta.label_names) or n < 1]
        if bad:
            raise saved.bad_file(path, f"class_counts {bad} do not fit {len(meta.label_names)} label names")
        model = cls(meta.params, meta.label_names)
        # The same counts fit the same classifier: DummyClassifier keeps nothing else from its train labels.
        classes = sorted(meta.class_counts)
        model._fit(np.repeat(classes, [meta.class_counts[c] for c in classes]), meta.seed)
        return model

    def describe(self) -> dict:
        if self.dummy is None:
            return {}
        return {"parameters": int(len(self.dummy.classes_)), "dtype": "float64", "device": "cpu"}
