"""The benchmark run: select models, skip what is done, run each in isolation, rebuild the report."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import BenchmarkSpec, ModelSpec
from harness.data import load_benchmark_data
from harness.errors import HarnessInputError
from harness.registry import load_benchmark, load_registry, select_models
from harness.runner import Job, run_job
from harness.store import ResultsStore, atomic_write_json, normalize_filter


@dataclass
class RunConfig:
    models: str = "all"
    benchmark: str = "amazon_polarity"
    budget: str | None = None
    seeds: int = 1
    data_dir: Path | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    train_filter: dict[str, list[str]] | None = None
    transfer_matrix: str | None = None
    results_dir: Path = Path("results")
    registry_path: Path | None = None
    benchmarks_dir: Path | None = None
    force: bool = False
    isolate: bool = True
    quiet: bool = False
    latency_samples: int = 50
    save_model: bool = True


@dataclass
class RunSummary:
    benchmark: str
    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    leaderboard: Path | None = None


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _log(config: RunConfig, message: str) -> None:
    if not config.quiet and is_main_process():
        print(message, flush=True)


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    # Runs in the child between fork and exec. Without it, a run killed with SIGKILL leaves its model's
    # process behind, still writing into the store while the rerun starts the same model again.
    _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(137)


def _run_isolated(job: Job, job_path: Path, store: ResultsStore, fingerprint: str) -> dict:
    """Run the job in a child process; a child that dies without a result is recorded as failed."""
    atomic_write_json(job_path, job.model_dump())
    setup = functools.partial(_die_with_parent, os.getpid()) if _LIBC is not None else None
    # The child must import this same harness even when it is not installed and the cwd is elsewhere.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
    process = subprocess.run(
        [sys.executable, "-m", "harness.worker", str(job_path)], check=False, preexec_fn=setup, env=env
    )
    if process.returncode == 2:
        raise HarnessInputError(f"model '{job.model}'", "bad input (see the message above)", "fix it and rerun")
    result = store.load_result(job.benchmark, job.model, job.seed, job.variant)
    if result is None or result.get("fingerprint") != fingerprint or result.get("status") not in ("completed", "failed"):
        code = process.returncode
        how = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        if code == -signal.SIGKILL:
            how += " (often the out-of-memory killer)"
        result = {
            "status": "failed",
            "fingerprint": fingerprint,
            "benchmark": job.benchmark,
            "model": job.model,
            "seed": job.seed,
            "error": {"type": "ChildProcessDied", "message": f"the run's process {how} before writing its result"},
        }
        atomic_write_json(store.run_dir(job.benchmark, job.model, job.seed, job.variant) / "result.json", result)
    return result


def transfer_filters(column: str, spec: BenchmarkSpec, train_values) -> list[dict[str, list[str]] | None]:
    """The train filters of a transfer matrix: all of train (the multilingual row), then each value alone.

    Args:
        column: a group column of the benchmark (e.g. ``lang``); the test axis is its per-group scores.
        spec: the benchmark.
        train_values: the column's values in the train split.
    """
    if column not in spec.group_columns:
        raise HarnessInputError(
            f"--transfer-matrix {column}",
            f"not a group column of benchmark {spec.name}",
            f"use one of {spec.group_columns}" if spec.group_columns else "declare group_columns in the benchmark YAML",
        )
    return [None, *({column: [value]} for value in sorted(set(map(str, train_values))))]


def build_jobs(
    config: RunConfig,
    spec: BenchmarkSpec,
    models: list[ModelSpec],
    budget_name: str,
    train_filters: list[dict[str, list[str]] | None] | None = None,
) -> list[Job]:
    """One job per (train filter, model, seed); the filters default to the run's own ``--train-filter``."""
    from harness.registry import DEFAULT_BENCHMARKS_DIR, DEFAULT_REGISTRY

    base_seed = spec.budgets[budget_name].seed
    return [
        Job(
            benchmark=spec.name,
            benchmarks_dir=str((config.benchmarks_dir or DEFAULT_BENCHMARKS_DIR).resolve()),
            registry_path=str((config.registry_path or DEFAULT_REGISTRY).resolve()),
            model=model.name,
            seed=base_seed + i,
            budget_name=budget_name,
            results_dir=str(Path(config.results_dir).resolve()),
            data_dir=str(Path(config.data_dir).resolve()) if config.data_dir else None,
            limit_train=config.limit_train,
            limit_test=config.limit_test,
            train_filter=normalize_filter(train_filter),
            latency_samples=config.latency_samples,
            save_model=config.save_model,
            show_progress=not config.quiet,
        )
        for train_filter in (train_filters if train_filters is not None else [config.train_filter])
        for model in models
        for i in range(config.seeds)
    ]


def run(config: RunConfig) -> RunSummary:
    """Run every selected model on the benchmark, then rebuild its report from the store."""
    from harness import report
    from harness.registry import DEFAULT_BENCHMARKS_DIR, DEFAULT_REGISTRY

    registry_path = config.registry_path or DEFAULT_REGISTRY
    registry = load_registry(registry_path)
    models = select_models(registry, config.models, registry_path)
    spec, _ = load_benchmark(config.benchmark, config.benchmarks_dir or DEFAULT_BENCHMARKS_DIR)
    budget_name = config.budget or spec.default_budget
    if budget_name not in spec.budgets:
        raise HarnessInputError(
            f"--budget '{budget_name}'", f"not a budget of benchmark {spec.name}", f"choose from {sorted(spec.budgets)}"
        )
    if config.seeds < 1:
        raise HarnessInputError("--seeds", f"must be at least 1, got {config.seeds}", "pass --seeds 1 or more")
    store = ResultsStore(config.results_dir)
    summary = RunSummary(benchmark=spec.name)

    # Validate the data once, up front: bad data is one clear line before any model starts.
    budget = spec.budgets[budget_name]
    data = load_benchmark_data(
        spec,
        config.data_dir,
        limit_train=config.limit_train,
        limit_test=config.limit_test,
        seed=budget.seed,
        train_filter=config.train_filter,
        max_train=budget.train_examples,
        max_test=budget.test_examples,
    )
    _log(
        config,
        f"benchmark {spec.name}: {len(data.train):,} train / {len(data.eval):,} {spec.eval_split} examples, "
        f"budget '{budget_name}', {len(models)} model(s) x {config.seeds} seed(s)",
    )

    filters = None
    if config.transfer_matrix:
        if config.train_filter:
            raise HarnessInputError(
                "--transfer-matrix", "cannot be combined with --train-filter", "the matrix chooses its own train filters"
            )
        filters = transfer_filters(config.transfer_matrix, spec, data.train.groups.get(config.transfer_matrix, []))
        _log(config, f"transfer matrix over '{config.transfer_matrix}': train on all, then on each of "
                     f"{', '.join(f[config.transfer_matrix][0] for f in filters[1:])}; evaluate on every value")
    for model in models:
        _log(config, estimate_line(store, spec.name, model.name, len(data.train) * budget.epochs * config.seeds))
    # The eval texts go to the store once, so the error analysis rebuilds from the store alone.
    eval_ids, eval_texts = data.eval.ids, data.eval.texts
    del data
    jobs = build_jobs(config, spec, models, budget_name, filters)
    isolate = config.isolate and not is_distributed()
    with store.lock(spec.name) if is_main_process() else _null():
        if is_main_process():
            store.write_eval_texts(spec.name, eval_ids, eval_texts)
        for job in jobs:
            spec_b, model_spec = job.load_specs()
            fp = job.fingerprint(spec_b, model_spec)
            trained_on = "".join(f", trained on {c}={','.join(v)}" for c, v in (job.train_filter or {}).items())
            label = f"{job.model} (seed {job.seed}{trained_on})"
            if not config.force and store.is_complete(job.benchmark, job.model, job.seed, fp, job.variant):
                _log(config, f"- {label}: already complete, skipped (--force to redo)")
                summary.skipped.append(label)
                continue
            _log(config, f"- {label}: running")
            start = time.perf_counter()
            if isolate:
                job_path = store.run_dir(job.benchmark, job.model, job.seed, job.variant) / "job.json"
                result = _run_isolated(job, job_path, store, fp)
            else:
                result = run_job(job)
            took = time.perf_counter() - start
            if result.get("secondary_process"):
                continue
            if result["status"] == "completed":
                m = result["metrics"]
                _log(config, f"  done in {took:.1f}s: accuracy {m['accuracy']:.4f}, macro-F1 {m['f1_macro']:.4f}")
                summary.completed.append(label)
            else:
                reason = result["error"]["message"]
                _log(config, f"  FAILED after {took:.1f}s: {result['error']['type']}: {reason}")
                summary.failed[label] = reason
        if is_main_process():
            summary.leaderboard = report.write_report(store, spec)
            _log(config, f"leaderboard: {summary.leaderboard}")
    _close_process_group()
    return summary


def _close_process_group() -> None:
    """Under a launcher, leave together and tear the process group down before exiting.

    A secondary rank that simply exits while the main one is still writing results can abort in the
    collective backend's destructor (seen with gloo: 'terminate called without an active exception').
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def estimate_line(store: ResultsStore, benchmark: str, model: str, examples: float) -> str:
    """A training-time estimate from this model's last measured speed in the store, never a guess."""
    speeds = [
        (r["training"]["samples_per_second"], r.get("device", {}).get("device_name", "?"))
        for _, r in store.iter_results(benchmark)
        if r.get("model") == model and r.get("status") == "completed" and r.get("training", {}).get("samples_per_second")
    ]
    if not speeds:
        return f"  {model}: {examples:,.0f} training examples; no earlier run to estimate its time from"
    rate, device = speeds[-1]
    return f"  {model}: {examples:,.0f} training examples, about {examples / rate / 60:.1f} min at its last measured {rate:.0f} samples/s ({device})"


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
