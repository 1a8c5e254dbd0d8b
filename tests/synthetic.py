"""Results written by hand into a store, as the runner would write them, for report and store tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.config.schema import BenchmarkSpec
from harness.metrics.quality import classification_metrics, group_metrics
from harness.store.results import Configuration, RunResult, benchmark_definition, run_fingerprint
from harness.store.results_store import ResultsStore, write_result


def configuration(spec: BenchmarkSpec, budget_name: str | None = None, limit_train: int | None = None,
                  limit_test: int | None = None, data: dict | None = None) -> Configuration:
    name = budget_name or spec.default_budget
    budget = spec.budgets[name]
    update = {k: v for k, v in (("train_examples", limit_train), ("test_examples", limit_test)) if v is not None}
    return Configuration.build(
        benchmark=spec.name,
        benchmark_definition=benchmark_definition(spec),
        budget_profile=name,
        budget=budget.model_copy(update=update),
        limit_train=limit_train,
        limit_test=limit_test,
        train_sample="per-seed",
        data=data or {"train": "test-data", "test": "test-data"},
    )


def write_run(
    store: ResultsStore,
    spec: BenchmarkSpec,
    config: Configuration,
    model: str,
    seed: int,
    labels: np.ndarray,
    probs: np.ndarray,
    groups: dict[str, np.ndarray] | None = None,
    *,
    variant: str | None = None,
    train_filter: dict | None = None,
    loss: list[dict] | None = None,
    latency: float = 1.0,
    memory_mib: float = 100,
    train_rows: int = 100,
    device: str = "CPU: test",
    family: str = "transformer",
) -> Path:
    """One completed run with metrics computed from the probabilities as stored (rounded to 6 decimals)."""
    store.write_configuration(config)
    run_dir = store.run_dir(spec.name, config.label, model, seed, variant)
    run_dir.mkdir(parents=True, exist_ok=True)
    groups = groups or {}
    store.write_predictions(run_dir, np.arange(len(labels)), labels, probs, spec.label_names, groups)
    k = len(spec.label_names)
    stored = ResultsStore.read_predictions(run_dir)[[f"prob_{i}" for i in range(k)]].to_numpy()
    latency_summary = {
        "p50_ms": latency, "p90_ms": 1.5 * latency, "p95_ms": 2 * latency, "p99_ms": 3 * latency,
        "mean_ms": latency, "std_ms": 0.1, "min_ms": latency / 2, "max_ms": 4 * latency, "repetitions": 50, "warmup": 5,
    }  # fmt: skip
    result = RunResult(
        status="completed",
        benchmark=spec.name,
        model=model,
        seed=seed,
        family=family,
        configuration=config,
        fingerprint=run_fingerprint(config, {"name": model}, seed, train_filter),
        train_filter=train_filter,
        budget=config.budget.model_copy(update={"seed": seed}),
        data={"kind": "local", "train_rows": train_rows, "eval_rows": len(labels), "eval_split": spec.eval_split},
        metrics=classification_metrics(labels, stored, spec.label_names),
        group_metrics={c: group_metrics(labels, stored, v, spec.label_names) for c, v in groups.items()},
        training={"train_seconds": 2.0, "samples_per_second": 50.0, "loss_curve": loss or []},
        inference={
            "eval_examples": len(labels), "eval_seconds": 1.0, "throughput_samples_per_s": 100.0,
            "throughput_warmup_examples": 8, "eval_batch_size": 64, "latency_batch1_end_to_end": latency_summary,
        },  # fmt: skip
        memory={
            "train": {"rss_peak_bytes": int(2 * memory_mib * 2**20)},
            "inference": {"rss_peak_bytes": int(memory_mib * 2**20)},
        },
        model_info={"parameters": 1_000_000},
        device={"device_name": device},
        environment={"harness_version": "test", "git_commit": "0123456789abcdef"},
    )
    write_result(run_dir / "result.json", result)
    return Path(run_dir)
