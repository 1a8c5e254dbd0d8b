"""TF-IDF n-grams + logistic regression: the classic baseline (scikit-learn only, no torch)."""

from __future__ import annotations

import json
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from harness.config.schema import MAX_ROWS, Budget, FiniteFloat, Flag, Integer, ModelSpec, Strict
from harness.data.loading import Split
from harness.models import saved
from harness.models.base import FitReport
from harness.store.results import TrainingForecast

CONFIG_FILE = "tfidf_config.json"
WEIGHTS_FILE = "tfidf_weights.npz"
# The forecast's sample: 5% of the rows, at least this many (fewer make the scaling noise).
FORECAST_MIN_ROWS = 500


class TfidfParams(Strict):
    """A tfidf entry's `params:` (written `tfidf:` before; both read the same)."""

    ngram_max: Integer = Field(2, ge=1, le=5)
    min_df: Integer = Field(2, ge=1, le=MAX_ROWS)
    max_features: Integer | None = Field(500_000, ge=1, le=10**8)
    sublinear_tf: Flag = True
    C: FiniteFloat = Field(4.0, gt=0, le=1e6)
    max_iter: Integer = Field(1000, ge=1, le=10**6)


_USAGE = """This is a scikit-learn TF-IDF + logistic-regression model saved as plain JSON and NumPy arrays (no pickle),
not a transformers model. Load it with the harness:

```python
from harness.run.predict import predict_texts
predict_texts("<this directory>", ["some text"])
```"""


class SavedTfidf(BaseModel):
    """``tfidf_config.json`` as ``save`` writes it; checked on load so a damaged folder fails there, in one line."""

    model_config = ConfigDict(extra="forbid")

    label_names: list[str] = Field(min_length=2)
    params: TfidfParams
    vocabulary: dict[str, int]


def _check_weights(meta: SavedTfidf, arrays: dict[str, np.ndarray]) -> str | None:
    """What makes the saved arrays unusable with this config (shapes, indices, classes), or None."""
    size = len(meta.vocabulary)
    idf, coef, intercept, classes = (arrays[k] for k in ("idf", "coef", "intercept", "classes"))
    if idf.shape != (size,) or not np.isfinite(idf).all():
        return f"idf has shape {idf.shape}, expected ({size},) finite values"
    indices = np.fromiter(meta.vocabulary.values(), dtype=np.int64, count=size)
    if size and (indices.min() < 0 or indices.max() >= size or len(np.unique(indices)) != size):
        return "vocabulary indices are not 0..V-1, each once"
    if classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer) or len(np.unique(classes)) != len(classes):
        return "classes is not a list of distinct class indices"
    if len(classes) < 2 or classes.min() < 0 or classes.max() >= len(meta.label_names):
        return f"classes {classes.tolist()} do not fit {len(meta.label_names)} label names"
    rows = 1 if len(classes) == 2 else len(classes)
    if coef.shape != (rows, size) or intercept.shape != (rows,):
        return f"coef {coef.shape} / intercept {intercept.shape} do not match {len(classes)} classes x {size} terms"
    # A NaN or infinite coefficient makes every probability of a text holding its term NaN.
    for name, values in (("coef", coef), ("intercept", intercept)):
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            return f"{name} holds values that are not finite numbers"
    return None


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of ``tfidf_weights.npz``; one line naming it when it is missing, truncated or lacks one."""
    names = ("idf", "coef", "intercept", "classes")
    try:
        with np.load(path, allow_pickle=False) as weights:
            missing = set(names) - set(weights.files)
            if missing:
                raise saved.bad_file(path, f"lacks the arrays {sorted(missing)}")
            return {k: weights[k] for k in names}
    except FileNotFoundError:
        raise saved.bad_file(path, "missing from the saved model folder") from None
    except ValueError as exc:
        # An object array loads only through pickle, which could run code: refused (allow_pickle=False).
        raise saved.bad_file(path, f"holds an array NumPy loads only through pickle, refused ({saved.reason(exc)})"
                             ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        # A truncated archive is a BadZipFile (or an EOFError on one of its arrays).
        raise saved.bad_file(path, f"is truncated or not a NumPy archive ({saved.reason(exc)})") from None


class TfidfLogReg:
    # The budget fields this family reads: how many rows, which seed, how large an inference batch. Epochs,
    # learning rate and max_length mean nothing to it, and the leaderboard does not describe it by them.
    budget_fields = ("train_examples", "test_examples", "seed", "eval_batch_size")
    params_schema = TfidfParams
    takes_source = False
    card_library = "scikit-learn"
    card_usage = _USAGE

    def __init__(self, params: TfidfParams, label_names: list[str]):
        self.params = params
        self.label_names = list(label_names)
        self.pipeline: Pipeline | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec, label_names: list[str]) -> TfidfLogReg:
        return cls(TfidfParams.model_validate(spec.params or {}), label_names)

    @classmethod
    def settings(cls, spec: ModelSpec, info: dict) -> dict:
        params = TfidfParams.model_validate(spec.params or {}).model_dump()
        return {
            "ngram_range": f"1-{params.pop('ngram_max')}",
            **params,
            "vocabulary": info.get("vocabulary"),
            "coefficients": info.get("parameters"),
        }

    def _build(self, seed: int) -> Pipeline:
        p = self.params
        return Pipeline(
            [
                (
                    "tfidf",
                    TfidfVectorizer(
                        ngram_range=(1, p.ngram_max),
                        min_df=p.min_df,
                        max_features=p.max_features,
                        sublinear_tf=p.sublinear_tf,
                        dtype=np.float32,
                    ),
                ),
                ("logreg", LogisticRegression(C=p.C, max_iter=p.max_iter, random_state=seed)),
            ]
        )

    def fit(self, train: Split, budget: Budget, workdir: Path, show_progress: bool = True,
            on_forecast: Callable[[TrainingForecast, str], None] | None = None) -> FitReport:
        # A linear model has no epochs or steps: the shared budget it honours is the train examples and seed.
        start = time.perf_counter()
        forecast = self._forecast(train, budget.seed) if on_forecast is not None else None
        if forecast is not None:
            asked = time.perf_counter()
            on_forecast(forecast, "1 process (scikit-learn)")
            start += time.perf_counter() - asked  # a question's wait is not training time
        self.pipeline = self._build(budget.seed)
        self.pipeline.fit(train.texts, train.labels)
        seconds = time.perf_counter() - start
        return FitReport(
            forecast=forecast,
            examples_seen=len(train),
            unique_examples=len(train),
            epochs_completed=1.0,
            optimizer_steps=int(np.max(self.pipeline.named_steps["logreg"].n_iter_)),
            train_seconds=seconds,
            samples_per_second=len(train) / seconds if seconds > 0 else None,
            loss_curve=[],
            stopped_by="converged",
        )

    def _forecast(self, train: Split, seed: int) -> TrainingForecast | None:
        """Fit on a random 5% of the rows (at least FORECAST_MIN_ROWS) and scale by rows.

        Vectorising and each L-BFGS iteration grow linearly with the rows; the sample's time counts as spent.
        """
        n = len(train)
        rows = max(FORECAST_MIN_ROWS, n // 20)
        if rows * 2 > n or len(set(train.labels.tolist())) < 2:
            return None  # the sample would be half the work, or one class: the fit itself is the answer
        start = time.perf_counter()
        pick = np.random.default_rng(seed).choice(n, size=rows, replace=False)
        sample_labels = train.labels[pick]
        if len(set(sample_labels.tolist())) < 2:
            return None
        self._build(seed).fit([train.texts[i] for i in pick], sample_labels)
        seconds = time.perf_counter() - start
        return TrainingForecast(
            seconds=round(seconds + seconds * n / rows, 3), spent_seconds=round(seconds, 3), measured_steps=1,
            measured_seconds=round(seconds, 3), basis=f"a fit on {rows:,} of {n:,} rows took {seconds:.2f} s",
        )

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        assert self.pipeline is not None, "fit or load the model first"
        probs = self.pipeline.predict_proba(list(texts))
        # A class absent from train has no column: put it back as probability 0 so shapes always match K.
        full = np.zeros((len(texts), len(self.label_names)), dtype=np.float64)
        full[:, self.pipeline.classes_] = probs
        return full

    def save(self, directory: Path) -> None:
        # Plain JSON + a NumPy archive read with allow_pickle=False: loading runs no code (unlike pickle),
        # and it is ~100x faster than skops on a 10^5-term vocabulary.
        assert self.pipeline is not None, "fit the model first"
        directory = Path(directory)
        vectorizer, logreg = self.pipeline.named_steps["tfidf"], self.pipeline.named_steps["logreg"]
        vocabulary = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
        meta = {"label_names": self.label_names, "params": self.params.model_dump(), "vocabulary": vocabulary}
        (directory / CONFIG_FILE).write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")
        np.savez(
            directory / WEIGHTS_FILE,
            idf=vectorizer.idf_,
            coef=logreg.coef_,
            intercept=logreg.intercept_,
            classes=logreg.classes_,
        )

    @classmethod
    def load(cls, directory: Path) -> TfidfLogReg:
        directory = Path(directory)
        try:
            meta = SavedTfidf.model_validate_json(saved.read_text_file(directory / CONFIG_FILE))
        except ValidationError as exc:
            raise saved.first_error(directory / CONFIG_FILE, exc) from None
        arrays = _read_weights(directory / WEIGHTS_FILE)
        problem = _check_weights(meta, arrays)
        if problem:
            raise saved.bad_file(directory / WEIGHTS_FILE, f"does not match {CONFIG_FILE}: {problem}")
        model = cls(meta.params, meta.label_names)
        pipeline = model._build(seed=0)
        vectorizer, logreg = pipeline.named_steps["tfidf"], pipeline.named_steps["logreg"]
        vectorizer.vocabulary_ = meta.vocabulary
        vectorizer.idf_ = arrays["idf"]
        logreg.coef_ = arrays["coef"]
        logreg.intercept_ = arrays["intercept"]
        logreg.classes_ = arrays["classes"]
        model.pipeline = pipeline
        return model

    def describe(self) -> dict:
        if self.pipeline is None:
            return {}
        vocab = len(self.pipeline.named_steps["tfidf"].vocabulary_)
        coef = self.pipeline.named_steps["logreg"].coef_
        return {"parameters": int(coef.size + coef.shape[0]), "vocabulary": vocab, "dtype": "float32", "device": "cpu"}
