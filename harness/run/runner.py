"""One run: a (benchmark, model, seed) trained, measured, scored and written to the store.

This is the only place where the pieces meet; data flows one way through it:
data -> model.fit under the budget -> predict inside the trackers -> metrics -> store.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.config.schema import Budget, ModelSpec
from harness.core.errors import HarnessInputError, ModelRunError
from harness.core.output import tell
from harness.data.loading import BenchmarkData, check_data_identity, load_benchmark_data
from harness.metrics import machine
from harness.metrics import quality as M
from harness.metrics.columns import columns
from harness.metrics.cost import PhaseMemory, device_info, measure_latency, stopwatch, track_memory
from harness.metrics.extra import main_column
from harness.metrics.machine import measure_load
from harness.models import build_model, family_class, save_model, weights
from harness.run import running
from harness.run.forecast import RunDeclined, announce
from harness.run.job import Job
from harness.run.model_card import build_model_card
from harness.run.provenance import environment
from harness.run.variants import run_variants
from harness.store.results import (
    RESULT_FILE,
    DataInfo,
    MachineLoad,
    OtherRun,
    RunError,
    RunResult,
    SplitTruncation,
    TrialRecord,
    Truncation,
)
from harness.store.results_store import ResultsStore, atomic_write_json, write_result

CATALOGUE = {c.name for c in columns()}  # the metrics every result carries; extra ones are computed


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def latency_texts(texts: list[str], count: int) -> list[str]:
    """The same real test texts for every model: a fixed sample that does not depend on the run's seed."""
    rng = np.random.default_rng(0)
    index = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
    return [texts[i] for i in index]


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# Budget fields a family does not read are left out of its description, so a TF-IDF row is not described by
# epochs and a learning rate it never used. Families declare them as ``budget_fields``; the default is all.
ALL_BUDGET_FIELDS = tuple(Budget.model_fields)


def budget_fields_used(model) -> list[str]:
    return list(getattr(model, "budget_fields", ALL_BUDGET_FIELDS))


def model_settings(model_spec: ModelSpec, info: dict) -> dict:
    """The family's own settings, for the leaderboard: what a reader needs to reproduce the model."""
    return family_class(model_spec.family).settings(model_spec, info)


def truncation_report(model, data: BenchmarkData, max_length: int, group_columns: list[str]) -> Truncation:
    """The share of train and eval texts the model's tokenizer cuts at ``max_length``, overall and per group.

    A transformer reads at most ``max_length`` tokens (special tokens included) and silently ignores the rest;
    TF-IDF reads every text whole. Without this, a model that saw a third of each long review looks merely
    worse, not blind to the rest.
    """
    tokenizer = getattr(model, "tokenizer", None)

    def split_report(split) -> SplitTruncation:
        if tokenizer is None or len(split) == 0:
            return SplitTruncation(texts=len(split), truncated=0, share=0.0)
        lengths = np.array(
            [len(ids) for ids in tokenizer(list(split.texts), truncation=False, verbose=False)["input_ids"]]
        )
        cut = lengths > max_length
        by_group = {
            column: {
                str(value): float(cut[np.asarray(split.groups[column]).astype(str) == value].mean())
                for value in sorted(set(np.asarray(split.groups[column]).astype(str).tolist()))
            }
            for column in group_columns
            if column in split.groups
        }
        return SplitTruncation(texts=len(split), truncated=int(cut.sum()), share=float(cut.mean()), by_group=by_group)

    return Truncation(
        max_length=max_length if tokenizer is not None else None,
        applies=tokenizer is not None,
        train=split_report(data.train),
        eval=split_report(data.eval),
    )


class ResultNotRecorded(OSError):
    """A run failed and its failure record could not be written to the store either.

    An ``OSError`` (with the write's errno), so every caller that contains storage faults contains this one;
    ``result`` is the record that could not be written, with the run's own error.
    """

    def __init__(self, result: RunResult, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), getattr(cause, "filename", None))
        self.result = result

    def describe(self) -> str:
        """One line: the run's error, then why it is not in the store."""
        return (f"{self.result.error.type}: {self.result.error.message}; this failure could not be recorded in the "
                f"results store either ({self.strerror})")


def _failed(job: Job, exc: BaseException, partial: dict) -> RunResult:
    return RunResult(
        **partial,
        status="failed",
        error=RunError(
            type=type(exc).__name__,
            message=" ".join(str(exc).split())[:500] or type(exc).__name__,
            traceback_tail=traceback.format_exc().splitlines()[-8:],
        ),
        environment=environment(),
    )


def _send_to_trackers(result: RunResult, run_dir: Path, log_with: list[str]) -> None:
    """A tracker that fails (down, misconfigured) costs its copy of the numbers, never the run."""
    import logging

    from harness.run.trackers import log_run

    try:
        log_run(result, run_dir, log_with)
    except Exception as exc:  # noqa: BLE001 - the store already holds the run; say what the tracker missed
        logging.getLogger("harness").warning(
            f"  could not send {result.model} (seed {result.seed}) to {', '.join(log_with)}: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        )


def run_job(job: Job) -> RunResult | None:
    """Train, measure and score one run; always leaves a result.json behind.

    Bad data (HarnessInputError before the model is built) is re-raised, so the CLI can show its one line;
    any failure of the model itself, whatever its type, is recorded as a failed run and returned. Returns None
    in a secondary process of a distributed run (only the main process measures and writes).
    """
    store = ResultsStore(Path(job.settings.results_dir))
    run_dir = job.run_dir(store)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = job.settings
    budget = job.run_budget()
    partial = _run_identity(job, budget)
    model_stage = False
    entry = None
    try:
        data, partial["data"] = _load_data(job, budget)
        model_stage = True
        # Seen by any other harness run on this machine from now until the result is written.
        entry, began = running.register(f"{job.benchmark} {job.model} seed {job.seed}"), time.time()
        # Other commands' runs training here now share the cores with this one (re-checked between steps).
        machine.share_with_other_commands(lambda: running.training_elsewhere(entry))
        machine.rebalance_threads(force=True)
        if job.tuning is not None:
            # A tuned budget's row: the selected trial's own model, trained without the validation rows, on test.
            model, trained = _selected_model(job, store)
        else:
            model = _build_model(job, data)
            trained = _train(job, model, data, budget, run_dir)
        partial["budget_fields_used"] = budget_fields_used(model)
        machine.rebalance_threads(force=True)  # the evaluation and latency windows run at this moment's share
        scored = _predict_eval(model, data.eval, budget)
        if not is_main_process():
            # Every process trained and scored its shard; only the main one measures latency and writes.
            return None
        if job.trial is not None:
            return _trial_completed(job, partial, model, data, budget, trained, scored, store, run_dir)
        sample = latency_texts(data.eval.texts, settings.latency_samples)
        result = _completed(job, partial, model, data, budget, trained, scored, sample, store, run_dir)
        result.tuning = job.tuning
        model_dir = run_dir / "model"
        if settings.save_model:
            _save_model(job, model, result, model_dir)
        # ONNX Runtime fp32 and int8 beside the PyTorch model (harness/run/variants.py); each fails alone.
        result.deployment_variants = run_variants(job, model, run_dir, model_dir, data.eval, scored.probs,
                                                  data.label_names, sample, budget.eval_batch_size,
                                                  store.write_predictions)
        result.load.others = [OtherRun(**o) for o in running.others_between(began, time.time(), entry)]
        if settings.save_model:
            build_model_card(job.spec, job.model_spec, result).save(model_dir / "README.md")
        write_result(run_dir / RESULT_FILE, result)
        if settings.log_with:
            _send_to_trackers(result, run_dir, settings.log_with)
        return result
    except BaseException as exc:  # noqa: BLE001 - a failing model must never take the others down
        # The specs and data are shared by every model: bad ones stop the run. A model rejecting its own
        # entry (weights that will not load) fails alone, like any other model error.
        if isinstance(exc, (KeyboardInterrupt, RunDeclined)) or (isinstance(exc, HarnessInputError) and not model_stage):
            raise
        result = _failed(job, exc, partial)
        if job.trial is not None:
            result.trial = TrialRecord(number=job.trial.number, params=job.trial.params, status="failed")
        result.tuning = job.tuning
        try:
            write_result(run_dir / RESULT_FILE, result)
        except OSError as write_error:
            # The store itself refuses the record (disk full, read-only): the failure must still reach the
            # caller with its cause, not turn into a traceback that hides it.
            raise ResultNotRecorded(result, write_error) from None
        return result
    finally:
        running.finish(entry)
        machine.share_with_other_commands(None)


def _run_identity(job: Job, budget: Budget) -> dict:
    """What every result of this run holds, completed or failed: which run it is and under which budget."""
    spec, model_spec = job.spec, job.model_spec
    return {
        "benchmark": spec.name,
        "model": model_spec.name,
        "seed": job.seed,
        "family": model_spec.family,
        "configuration": job.configuration,
        "fingerprint": job.fingerprint,
        "train_filter": job.train_filter,
        "budget": budget,
        "budget_overrides": dict(model_spec.budget_overrides),
        "trust_remote_code": model_spec.trust_remote_code,
    }


def _load_data(job: Job, budget: Budget) -> tuple[BenchmarkData, DataInfo]:
    """The run's train and evaluation rows, and what the result says of them. Train rows are drawn with the
    run's seed, or the budget's for a fixed sample; the evaluation rows always with the budget's."""
    fixed = job.configuration.train_sample == "fixed"
    base_seed = job.configuration.budget.seed
    tuning = job.configuration.budget.tuning
    data = load_benchmark_data(
        job.spec,
        Path(job.settings.data_dir) if job.settings.data_dir else None,
        limit_train=job.configuration.limit_train,
        limit_test=job.configuration.limit_test,
        seed=base_seed if fixed else job.seed,
        test_seed=base_seed,
        train_filter=job.train_filter,
        max_train=budget.train_examples,
        max_test=budget.test_examples,
        identity=job.configuration.data,
        # A tuned budget's runs all train without the validation rows; only a trial is scored on them, and a
        # trial never reads the test split at all.
        hold_out=tuning.validation_share if tuning is not None else None,
        evaluate_on="validation" if job.trial is not None else "eval",
    )
    # The files this run read must be the ones its configuration was made from (raises DataChanged: the
    # run fails alone, in one line, before any training).
    check_data_identity(data.source, job.configuration.data, job.configuration.label)
    sampled = bool(job.configuration.limit_train or budget.train_examples)
    return data, DataInfo(**data.source, train_sample_seed=(base_seed if fixed else job.seed) if sampled else None)


def _build_model(job: Job, data: BenchmarkData):
    """A fresh model of the registry entry, from the very weights this command hashed into the run's identity."""
    model_spec = job.model_spec
    if job.weights is not None and weights.identity(model_spec) != job.weights:
        raise ModelRunError(
            f"model '{model_spec.name}': the weights in {weights.local_folder(model_spec.source)} changed after "
            "this command hashed them; rerun to run them as they are now"
        )
    return build_model(job.loaded_spec(), data.label_names)


@dataclass
class _Trained:
    """What training left: the precision it trained in, the result's training block (with wall time), its memory."""

    precision: str | None
    training: dict
    memory: PhaseMemory
    load: dict | None  # the training window's machine load (None: a selected trial written before it was measured)


@dataclass
class _Scored:
    """The evaluation split's probabilities, how long they took, and the memory of that phase."""

    probs: np.ndarray
    seconds: float
    warmup_examples: int
    memory: PhaseMemory
    load: dict


def _train(job: Job, model, data: BenchmarkData, budget: Budget, run_dir: Path) -> _Trained:
    """Fit under the budget, its memory and wall time measured; the forecast is said as soon as it is made."""
    name, show = job.model_spec.name, job.settings.show_progress
    with measure_load() as load, track_memory("train") as memory, stopwatch() as clock:
        fitted = model.fit(data.train, budget, run_dir, show_progress=show,
                           on_forecast=lambda forecast, setting: announce(
                               name, forecast, job.outlook, setting, show=show, out=tell))
    return _Trained(fitted.resolved_precision, {**fitted.model_dump(), "wall_seconds": clock["seconds"]}, memory, load)


def _selected_model(job: Job, store: ResultsStore) -> tuple[object, _Trained]:
    """The selected trial's saved model and what its training cost (the trial's own figures)."""
    from harness.models import load_model

    tuning = job.tuning
    if tuning.selected is None:
        raise ModelRunError(f"model '{job.model}': none of its {tuning.trials_planned} tuning trial(s) completed; "
                            f"see {job.trials_dir(store)}")
    trial_dir = store.trial_dir(job.benchmark, job.configuration.label, job.model, job.seed, tuning.selected,
                                job.variant)
    trial = store.load_result(trial_dir)
    if trial is None or not trial.completed or trial.trial is None or trial.trial.params != job.tried:
        raise ModelRunError(f"model '{job.model}': the selected trial in {trial_dir} is not the one selected; rerun")
    model = load_model(trial_dir / "model")
    stored = {k: v for k, v in trial.memory.train.model_dump().items() if v is not None} if trial.memory else {}
    # The trial's own training window: the selected row's training figures are the trial's, and so is their load.
    window = trial.load.windows.get("training") if trial.load else None
    return model, _Trained(trial.precision, trial.training.model_dump(), PhaseMemory("train", **stored),
                           window.model_dump() if window else None)


def _trial_completed(job: Job, partial: dict, model, data: BenchmarkData, budget: Budget, trained: _Trained,
                     scored: _Scored, store: ResultsStore, run_dir: Path) -> RunResult:
    """A trial's result: scored on the validation rows (no latency, no deployment variants), its model kept for
    the selection, its score told to the study."""
    result = _completed(job, partial, model, data, budget, trained, scored, None, store, run_dir)
    metric = main_column(job.spec)
    # A catalogue metric is the result's own figure; an extra one (an evaluate module) is computed here, on the
    # trial's validation predictions, as the report computes it on a run's stored ones.
    score = (getattr(result.metrics, metric.name) if metric.name in CATALOGUE
             else metric.score(data.eval.labels, scored.probs))
    result.trial = TrialRecord(number=job.trial.number, params=job.trial.params, validation_score=score,
                               status="completed", train_seconds=result.training.train_seconds)
    _save_model(job, model, result, run_dir / "model")
    write_result(run_dir / RESULT_FILE, result)
    from harness.run.tuning import tell

    tell(job, store, score)
    return result


def _predict_eval(model, evaluation, budget: Budget) -> _Scored:
    """Probabilities for every evaluation text (over every process where the family can), timed after one
    untimed batch, so the throughput does not include first-call initialisation."""

    def predict_all(texts: list[str]) -> np.ndarray:
        if getattr(model, "supports_distributed_eval", False):
            return model.predict_proba(texts, batch_size=budget.eval_batch_size, distributed=True)
        return model.predict_proba(texts, batch_size=budget.eval_batch_size)

    warmup_texts = evaluation.texts[: budget.eval_batch_size]
    predict_all(warmup_texts)
    with measure_load() as load, track_memory("inference") as memory, stopwatch() as clock:
        probs = predict_all(evaluation.texts)
    return _Scored(probs, clock["seconds"], len(warmup_texts), memory, load)


def _latencies(model, sample: list[str], warmup: int) -> tuple[dict, dict | None, dict]:
    """Batch-1 latency on the fixed sample of texts: raw text in, and (where the family has it) model only;
    then the machine's load over both."""
    with measure_load() as load:
        latency = measure_latency(lambda text: model.predict_proba([text], batch_size=1), sample, warmup)
        model_only = None
        if hasattr(model, "model_only_callable"):
            fn, inputs = model.model_only_callable(sample)
            model_only = measure_latency(fn, inputs, warmup)
    return latency, model_only, load


def _completed(job: Job, partial: dict, model, data: BenchmarkData, budget: Budget, trained: _Trained,
               scored: _Scored, sample: list[str] | None, store: ResultsStore, run_dir: Path) -> RunResult:
    """Latency measured on ``sample`` (None: not measured), the predictions scored and written beside the result, and the completed
    result."""
    spec, evaluation = job.spec, data.eval
    latency, model_only, latency_load = (
        _latencies(model, sample, job.settings.latency_warmup) if sample else (None, None, None)
    )
    metrics = M.classification_metrics(evaluation.labels, scored.probs, data.label_names)
    groups = {
        column: M.group_metrics(evaluation.labels, scored.probs, values, data.label_names)
        for column, values in evaluation.groups.items()
        if column in spec.group_columns
    }
    store.write_predictions(
        run_dir, evaluation.ids, evaluation.labels, scored.probs, data.label_names,
        {c: v for c, v in evaluation.groups.items() if c in spec.group_columns},
    )
    atomic_write_json(run_dir / "evaluation_metrics.json", M.exercise_metrics(metrics))
    info = model.describe()
    return RunResult(
        **partial,
        status="completed",
        precision=trained.precision or info.get("precision"),
        model_settings=model_settings(job.tried_spec(), info),
        metrics=metrics,
        group_metrics=groups,
        training=trained.training,
        inference={
            "eval_examples": len(evaluation),
            "eval_seconds": scored.seconds,
            "throughput_samples_per_s": len(evaluation) / scored.seconds,
            "throughput_warmup_examples": scored.warmup_examples,
            "eval_batch_size": budget.eval_batch_size,
            "latency_batch1_end_to_end": latency,
            "latency_batch1_model_only": model_only,
        },
        memory={"train": trained.memory.as_dict(), "inference": scored.memory.as_dict()},
        model_info=info,
        truncation=truncation_report(model, data, budget.max_length, spec.group_columns),
        device=device_info(),
        load=MachineLoad(windows={k: v for k, v in (("training", trained.load), ("throughput", scored.load),
                                                    ("latency", latency_load)) if v}),
        environment=environment(),
    )


def _save_model(job: Job, model, result: RunResult, model_dir: Path) -> None:
    """The trained model (replacing an older one) and its size in the result."""
    if model_dir.exists():
        shutil.rmtree(model_dir)
    save_model(model, model_dir, job.model_spec.family)
    result.model_info.size_on_disk_bytes = directory_bytes(model_dir)
