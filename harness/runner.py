"""One run: a (benchmark, model, seed) trained, measured, scored and written to the store.

This is the only place where the pieces meet; data flows one way through it:
data -> model.fit under the budget -> predict inside the trackers -> metrics -> store.
"""

from __future__ import annotations

import os
import shutil
import traceback
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from harness import metrics as M
from harness.config import BenchmarkSpec, Budget, ModelSpec
from harness.data import data_identity, load_benchmark_data
from harness.errors import HarnessInputError
from harness.measure import device_info, measure_latency, stopwatch, track_memory
from harness.models import build_model, save_model
from harness.provenance import environment, fingerprint
from harness.registry import load_benchmark, load_registry
from harness.store import ResultsStore, atomic_write_json, atomic_write_text, filter_variant


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class Job(BaseModel):
    """Everything a run needs, serialisable so it can cross into a child process."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    benchmarks_dir: str
    registry_path: str
    model: str
    seed: int
    budget_name: str
    results_dir: str
    data_dir: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    train_filter: dict[str, list[str]] | None = None
    latency_samples: int = 50
    latency_warmup: int = 5
    save_model: bool = True
    show_progress: bool = True

    def load_specs(self) -> tuple[BenchmarkSpec, ModelSpec]:
        spec, _ = load_benchmark(self.benchmark, Path(self.benchmarks_dir))
        return spec, load_registry(Path(self.registry_path))[self.model]

    def run_budget(self, spec: BenchmarkSpec, model: ModelSpec) -> Budget:
        """The benchmark's budget with CLI limits, this run's seed and the model's allowed overrides."""
        base = spec.budgets[self.budget_name]
        update: dict = {"seed": self.seed}
        if self.limit_train is not None:
            update["train_examples"] = self.limit_train
        if self.limit_test is not None:
            update["test_examples"] = self.limit_test
        return model.budget_for(base.model_copy(update=update))

    @property
    def variant(self) -> str | None:
        """Where in the store this run lives: a run on a filtered train split never replaces the full one."""
        return filter_variant(self.train_filter)

    def fingerprint(self, spec: BenchmarkSpec, model: ModelSpec) -> str:
        return fingerprint(
            {
                "benchmark": spec.model_dump(exclude={"description", "budgets"}),
                "model": model.model_dump(exclude={"description"}),
                "budget": self.run_budget(spec, model).model_dump(),
                "data": data_identity(spec, Path(self.data_dir) if self.data_dir else None),
                "train_filter": self.train_filter,
            }
        )


def latency_texts(texts: list[str], count: int) -> list[str]:
    """The same real test texts for every model: a fixed sample that does not depend on the run's seed."""
    rng = np.random.default_rng(0)
    index = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
    return [texts[i] for i in index]


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _failed(job: Job, exc: BaseException, fp: str | None, partial: dict) -> dict:
    return {
        **partial,
        "status": "failed",
        "fingerprint": fp,
        "benchmark": job.benchmark,
        "model": job.model,
        "seed": job.seed,
        "error": {
            "type": type(exc).__name__,
            "message": " ".join(str(exc).split())[:500] or type(exc).__name__,
            "traceback_tail": traceback.format_exc().splitlines()[-8:],
        },
        "environment": environment(),
    }


def run_job(job: Job) -> dict:
    """Train, measure and score one (benchmark, model, seed); always leaves a result.json behind.

    Bad specs or data (HarnessInputError before the model is built) are re-raised, so the CLI can show
    their one line; any failure of the model itself, whatever its type, is recorded as a failed run and returned.
    """
    store = ResultsStore(Path(job.results_dir))
    run_dir = store.run_dir(job.benchmark, job.model, job.seed, job.variant)
    run_dir.mkdir(parents=True, exist_ok=True)
    fp = None
    partial: dict = {}
    model_stage = False
    try:
        spec, model_spec = job.load_specs()
        budget = job.run_budget(spec, model_spec)
        fp = job.fingerprint(spec, model_spec)
        partial = {
            "family": model_spec.family,
            "budget_profile": job.budget_name,
            "budget": budget.model_dump(),
            "budget_overrides": dict(model_spec.budget_overrides),
            "trust_remote_code": model_spec.trust_remote_code,
            "train_filter": job.train_filter,
        }
        data = load_benchmark_data(
            spec,
            Path(job.data_dir) if job.data_dir else None,
            limit_train=job.limit_train,
            limit_test=job.limit_test,
            seed=spec.budgets[job.budget_name].seed,
            train_filter=job.train_filter,
            max_train=budget.train_examples,
            max_test=budget.test_examples,
        )
        partial["data"] = data.source
        model_stage = True
        model = build_model(model_spec, data.label_names)

        with track_memory("train") as train_memory, stopwatch() as train_clock:
            training = model.fit(data.train, budget, run_dir, show_progress=job.show_progress)
        training = {**training, "wall_seconds": train_clock["seconds"]}

        evaluation = data.eval

        def predict_all(texts: list[str]) -> np.ndarray:
            if getattr(model, "supports_distributed_eval", False):
                return model.predict_proba(texts, batch_size=budget.eval_batch_size, distributed=True)
            return model.predict_proba(texts, batch_size=budget.eval_batch_size)

        # One untimed batch first, so the throughput below does not include first-call initialisation.
        warmup_texts = evaluation.texts[: budget.eval_batch_size]
        predict_all(warmup_texts)
        with track_memory("inference") as inference_memory, stopwatch() as eval_clock:
            probs = predict_all(evaluation.texts)
        if not is_main_process():
            # Every process trained and scored its shard; only the main one measures latency and writes.
            return {"status": "completed", "secondary_process": True}
        sample = latency_texts(evaluation.texts, job.latency_samples)
        latency = measure_latency(lambda text: model.predict_proba([text], batch_size=1), sample, job.latency_warmup)
        model_only = None
        if hasattr(model, "model_only_callable"):
            fn, inputs = model.model_only_callable(sample)
            model_only = measure_latency(fn, inputs, job.latency_warmup)

        metrics = M.classification_metrics(evaluation.labels, probs, data.label_names)
        groups = {
            column: M.group_metrics(evaluation.labels, probs, values, data.label_names)
            for column, values in evaluation.groups.items()
            if column in spec.group_columns
        }
        store.write_predictions(
            run_dir, evaluation.ids, evaluation.labels, probs, data.label_names,
            {c: v for c, v in evaluation.groups.items() if c in spec.group_columns},
        )
        atomic_write_json(run_dir / "evaluation_metrics.json", M.exercise_metrics(metrics))

        model_dir = run_dir / "model"
        info = model.describe()
        if job.save_model:
            if model_dir.exists():
                shutil.rmtree(model_dir)
            save_model(model, model_dir, model_spec.family)
            info["size_on_disk_bytes"] = directory_bytes(model_dir)
            atomic_write_text(model_dir / "README.md", model_card(spec, model_spec, budget, metrics, data.source))

        result = {
            **partial,
            "status": "completed",
            "fingerprint": fp,
            "benchmark": spec.name,
            "model": model_spec.name,
            "seed": job.seed,
            "metrics": metrics,
            "group_metrics": groups,
            "training": training,
            "inference": {
                "eval_examples": len(evaluation),
                "eval_seconds": eval_clock["seconds"],
                "throughput_samples_per_s": len(evaluation) / eval_clock["seconds"],
                "throughput_warmup_examples": len(warmup_texts),
                "eval_batch_size": budget.eval_batch_size,
                "latency_batch1_end_to_end": latency,
                "latency_batch1_model_only": model_only,
            },
            "memory": {"train": train_memory.as_dict(), "inference": inference_memory.as_dict()},
            "model_info": info,
            "device": device_info(),
            "environment": environment(),
            "error": None,
        }
        atomic_write_json(run_dir / "result.json", result)
        return result
    except BaseException as exc:  # noqa: BLE001 - a failing model must never take the others down
        # The specs and data are shared by every model: bad ones stop the run. A model rejecting its own
        # entry (weights that will not load) fails alone, like any other model error.
        if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, HarnessInputError) and not model_stage):
            raise
        result = _failed(job, exc, fp, partial)
        atomic_write_json(run_dir / "result.json", result)
        return result


def model_card(spec: BenchmarkSpec, model: ModelSpec, budget: Budget, metrics: dict, source: dict) -> str:
    """A short model card saved beside the weights."""
    per_class = "\n".join(
        f"| {name} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | {m['support']} |"
        for name, m in metrics["per_class"].items()
    )
    budget_lines = "\n".join(f"- {k}: {v}" for k, v in budget.model_dump().items() if v is not None)
    origin = model.source.model_dump(exclude_none=True) if model.source else {"family": model.family}
    return f"""---
pipeline_tag: text-classification
tags: [text-classification, {spec.name}]
---
# {model.name} fine-tuned on {spec.name}

{model.description}

Base: `{origin}`. Labels: {", ".join(spec.label_names)}.

## Evaluation ({source.get('eval_split')} split, {metrics['n']} examples)
accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['f1_macro']:.4f}, ROC-AUC {metrics['roc_auc'] if metrics['roc_auc'] is None else round(metrics['roc_auc'], 4)}

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

## Training budget
{budget_lines}

## Data
{os.linesep.join(f'- {k}: {v}' for k, v in source.items())}

## Use
```python
from transformers import pipeline
classify = pipeline("text-classification", model="<this directory>")
```
or `python run_benchmark.py predict --model-dir <this directory> "some text"`.
"""
