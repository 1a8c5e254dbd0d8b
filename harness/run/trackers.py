"""Experiment trackers (TensorBoard, W&B, MLflow) through Accelerate's ``log_with``, after each run.

The run's record is the store; a tracker gets a copy of what the run measured, under one tracker run per
(benchmark, configuration, model, seed): the budget and settings as hyperparameters, the training loss curve at
its optimizer steps, then the evaluation metrics and costs at the last step. Logging happens once the run's
result exists, so a tracker that is slow or down never changes what is trained or timed.
"""

from __future__ import annotations

from pathlib import Path

from harness.metrics.columns import columns
from harness.store.results import RunResult

TRACKERS_DIR = "trackers"


def _scalar(value):
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def tracker_config(result: RunResult) -> dict:
    """Hyperparameters as trackers accept them: flat keys, scalar values."""
    config = {
        "benchmark": result.benchmark,
        "model": result.model,
        "seed": result.seed,
        "family": result.family,
        "configuration": result.configuration.label,
        "budget_profile": result.configuration.budget_profile,
    }
    if result.budget is not None:
        config.update({f"budget/{k}": _scalar(v) for k, v in result.budget.model_dump().items()})
    config.update({f"model/{k}": _scalar(v) for k, v in result.model_settings.items()})
    return config


def final_metrics(result: RunResult) -> dict[str, float]:
    m, i, t = result.metrics, result.inference, result.training
    values = {
        **{f"eval/{column.name}": getattr(m, column.name) for column in columns("table")},
        "train/seconds": t.train_seconds,
        "train/samples_per_second": t.samples_per_second,
        "cost/latency_p50_ms": i.latency_batch1_end_to_end.p50_ms if i.latency_batch1_end_to_end else None,
        "cost/eval_samples_per_second": i.throughput_samples_per_s,
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def log_run(result: RunResult, run_dir: Path, log_with: list) -> None:
    """Send a completed run to the trackers (names, or ``accelerate.tracking.GeneralTracker`` instances)."""
    from accelerate import Accelerator

    accelerator = Accelerator(log_with=log_with, project_dir=str(Path(run_dir) / TRACKERS_DIR))
    run_name = f"{result.benchmark}/{result.configuration.label}/{result.model}/seed-{result.seed}"
    accelerator.init_trackers(run_name.replace("/", "-"), config=tracker_config(result))
    last = 0
    for point in result.training.loss_curve:
        last = int(point.get("step", last))
        accelerator.log({"train/loss": float(point["loss"])}, step=last)
    accelerator.log(final_metrics(result), step=last)
    accelerator.end_training()
