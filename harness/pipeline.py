"""The benchmark run: select models, skip what is done, run each in isolation, rebuild the report."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config.options import RunOptions, RunSettings
from harness.config.registry import default_registry_path, load_benchmark, load_registry, select_models
from harness.config.schema import MAX_SEED, BenchmarkSpec, ModelSpec
from harness.core.errors import DataChanged, HarnessInputError
from harness.core.output import say
from harness.data.loading import check_data_identity, data_identity, load_benchmark_data, untrained_warning
from harness.models import check_entries, weights
from harness.models.positions import check_max_length
from harness.run.forecast import LaterRun, Outlook, RunDeclined
from harness.run.job import Job
from harness.run.plan import Prior, last_speeds, prior_lines, prior_seconds
from harness.store.results import Configuration, benchmark_definition
from harness.store.results_store import ResultsStore, normalize_filter

if TYPE_CHECKING:  # imported where the report is written: a model's worker process never needs it
    from harness.report.board import Leaderboard

DEFAULT_BENCHMARK = "amazon_polarity"
# Amazon Polarity's text has no licence that allows shipping it; this sample (CC BY-SA) ships with the harness.
OFFLINE_BENCHMARK = "dbpedia14"


@dataclass
class RunSummary:
    benchmark: str
    configuration: str | None = None
    completed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    leaderboard: Path | None = None
    board: Leaderboard | None = None  # what the report was drawn from: suites and the API use it, not the store
    declined: str | None = None  # the user stopped the command at a time forecast: what was declined
    interrupted: bool = False  # Ctrl-C: queued runs cancelled; the leaderboard holds what finished


def is_distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


log = logging.getLogger("harness")


def _log(options: RunOptions, message: str) -> None:
    if not options.quiet and is_main_process():
        log.info(message)


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


def configuration_for(options: RunOptions, spec: BenchmarkSpec, budget_name: str) -> Configuration:
    """The configuration a command asks for: what its runs share and what changes their numbers."""
    budget = spec.budgets[budget_name]
    update = {}
    if options.limit_train is not None:
        update["train_examples"] = options.limit_train
    if options.limit_test is not None:
        update["test_examples"] = options.limit_test
    if options.trials is not None:
        if budget.tuning is None:
            raise HarnessInputError("--trials", f"budget '{budget_name}' of benchmark {spec.name} has no tuning",
                                    "pick a budget with a tuning block (e.g. --budget tuned) or drop --trials")
        update["tuning"] = budget.tuning.model_copy(update={"trials": options.trials})
    return Configuration.build(
        benchmark=spec.name,
        benchmark_definition=benchmark_definition(spec),
        budget_profile=budget_name,
        budget=budget.model_copy(update=update),
        limit_train=options.limit_train,
        limit_test=options.limit_test,
        train_sample="fixed" if options.fixed_train_sample else "per-seed",
        data=data_identity(spec, options.data_dir, tuned=budget.tuning is not None),
    )


def build_jobs(
    options: RunOptions,
    spec: BenchmarkSpec,
    models: list[ModelSpec],
    configuration: Configuration,
    train_filters: list[dict[str, list[str]] | None] | None = None,
) -> list[Job]:
    """One job per (train filter, model, seed); the filters default to the run's own ``--train-filter``."""
    base_seed = configuration.budget.seed
    commits = {model.name: _model_commit(model) for model in models}
    local_weights = {model.name: weights.identity(model) for model in models}
    settings: RunSettings = options.run_settings()
    return [
        Job(
            spec=spec,
            model_spec=model,
            configuration=configuration,
            seed=base_seed + i,
            train_filter=normalize_filter(train_filter),
            settings=settings,
            model_commit=commits[model.name],
            weights=local_weights[model.name],
        )
        for train_filter in (train_filters if train_filters is not None else [options.train_filter])
        for model in models
        for i in range(options.seeds)
    ]


def default_benchmark(options: RunOptions) -> str:
    """The benchmark to run: the one named, else Amazon Polarity, else (no hub, no --data-dir) the shipped sample.

    A first run on a machine without the hub still runs every model it can, on real data, and says loudly that
    it is a smoke test on a small sample rather than the benchmark's published numbers.
    """
    if options.benchmark is not None:
        return options.benchmark
    if options.data_dir is None:
        from harness.data.loading import hub_out_of_reach

        spec, _ = load_benchmark(DEFAULT_BENCHMARK, options.benchmarks_dir)
        if spec.dataset.hub_id and hub_out_of_reach(spec.dataset.hub_id):
            _log(options, f"the hub is out of reach and no --data-dir was given: running '{OFFLINE_BENCHMARK}' on the "
                         f"sample that ships with the harness instead of '{DEFAULT_BENCHMARK}' (a smoke test, not "
                         "published-scale numbers; pass --benchmark and --data-dir to choose)")
            return OFFLINE_BENCHMARK
    return DEFAULT_BENCHMARK


def _model_commit(model: ModelSpec) -> str | None:
    """A hub model's revision pinned to its commit now, so new upstream weights make a new run."""
    source = model.source
    if source is None or not source.hub_id:
        return None
    from harness.core import hub

    return hub.resolve_revision(source.hub_id, source.revision, "model")


def run(options: RunOptions, answer_file: Path | None = None) -> RunSummary:
    """Run every selected model on the benchmark, then rebuild the configuration's report from the store.

    Args:
        options: the command's options.
        answer_file: where a "yes" to the time question is kept (a suite passes one for all its benchmarks;
            default: one for this call).
    """
    from harness.run import running

    running.command_id()  # this command's runs, inheriting it, are not named as each other's neighbours
    models = select_run_models(options)
    spec, spec_path = load_benchmark(default_benchmark(options), options.benchmarks_dir)
    budget_name = _budget_name(options, spec)
    # Before any data is read: a max_length a model has no positions for would fail its training much later.
    check_max_length(models, spec.budgets[budget_name].max_length, spec_path, spec.name, budget_name)
    store = ResultsStore(options.results_dir)
    summary = RunSummary(benchmark=spec.name)
    # The configuration (with the data's fingerprint) comes first: hub data is read at the commit it records.
    configuration = configuration_for(options, spec, budget_name)
    # Validate the data once, up front: bad data is one clear line before any model starts.
    data = _load_data(options, spec, configuration)
    summary.configuration = configuration.label
    _announce(options, spec, store, data, configuration, len(models))
    jobs = build_jobs(options, spec, models, configuration, _train_filters(options, spec, data))
    # What earlier runs say of the time ahead (the store read once); each run forecasts itself when it starts.
    speeds = last_speeds(store, spec.name)
    _record_configuration(store, spec, configuration, data.eval)
    if configuration.budget.tuning is not None:
        _execute_tuned(options, spec, store, jobs, speeds, data.train, answer_file, summary)
    else:
        priors = prior_seconds(jobs, store, speeds, data.train, options.force)
        for line in prior_lines(jobs, priors, speeds):
            _log(options, line)
        del data  # the runs load their own
        _execute(options, spec, jobs, priors, answer_file, summary)
    _publish(options, store, spec, configuration, summary)
    _close_process_group()
    if summary.interrupted:
        raise KeyboardInterrupt  # after the report of what finished: the command still exits 130
    return summary


def select_run_models(options: RunOptions) -> list[ModelSpec]:
    """The registry models the options name, then the entries built in code (each name once)."""
    registry_path = options.registry or default_registry_path()
    names, entries = options.split_models()
    models = []
    if names or not entries:
        models = select_models(load_registry(registry_path), names or "all", registry_path)
        check_entries(models, registry_path)
    check_entries(entries)
    for entry in entries:
        if any(m.name == entry.name for m in models):
            raise HarnessInputError(f"model '{entry.name}'", "given twice", "give each model a unique name")
        models.append(entry)
    return models


def _budget_name(options: RunOptions, spec: BenchmarkSpec) -> str:
    """The budget profile to run, checked against the benchmark (and the largest seed it allows)."""
    budget_name = options.budget or spec.default_budget
    if budget_name not in spec.budgets:
        raise HarnessInputError(
            f"--budget '{budget_name}'", f"not a budget of benchmark {spec.name}", f"choose from {sorted(spec.budgets)}"
        )
    first = spec.budgets[budget_name].seed
    if first + options.seeds - 1 > MAX_SEED:
        raise HarnessInputError(
            "--seeds", f"seeds {first}..{first + options.seeds - 1} pass the largest seed {MAX_SEED}",
            "lower the budget's seed or --seeds",
        )
    return budget_name


def _load_data(options: RunOptions, spec: BenchmarkSpec, configuration: Configuration):
    """The benchmark's data as the runs will read it, checked against the configuration's fingerprint."""
    budget = spec.budgets[configuration.budget_profile]
    data = load_benchmark_data(
        spec,
        options.data_dir,
        limit_train=options.limit_train,
        limit_test=options.limit_test,
        seed=budget.seed,
        train_filter=options.train_filter,
        max_train=budget.train_examples,
        max_test=budget.test_examples,
        identity=configuration.data,
    )
    try:
        # Every run checks the files it reads against the configuration too.
        check_data_identity(data.source, configuration.data, configuration.label)
    except DataChanged as exc:  # changed between its hash and its read: nothing has run yet
        raise HarnessInputError(exc.where, exc.problem, exc.fix) from None
    return data


def _announce(options: RunOptions, spec: BenchmarkSpec, store: ResultsStore, data, configuration: Configuration,
              n_models: int) -> None:
    """What this command is about to run, on which data, and where it goes."""
    _log(
        options,
        f"benchmark {spec.name}: {len(data.train):,} train / {len(data.eval):,} {spec.eval_split} examples, "
        f"{configuration.describe()}, {n_models} model(s) x {options.seeds} seed(s)",
    )
    _log(options, f"configuration {configuration.label} (results under {store.config_dir(spec.name, configuration.label)})")
    if data.source.get("note"):
        _log(options, f"NOTE: {data.source['note']}")
    leak = data.source.get("leakage")
    if leak and leak["in_train"]:
        removed = f"; {leak['dropped_from_train']:,} train row(s) holding them removed (dedupe: drop_from_train)"
        _log(options, f"leakage: {leak['in_train']:,} of {leak['eval_texts']:,} {spec.eval_split} texts also occur in "
                      f"train" + (removed if leak["dropped_from_train"] else " (kept; dedupe: drop_from_train removes them)"))
    for name, rows in (data.source.get("classes_without_train_rows") or {}).items():
        log.warning(untrained_warning(name, rows, spec.eval_split))
    if (legacy := store.legacy_runs(spec.name)) is not None:
        _log(options, f"note: {legacy} holds runs of an older harness (no configurations); they are not read")


def _train_filters(options: RunOptions, spec: BenchmarkSpec, data) -> list[dict[str, list[str]] | None] | None:
    """A transfer matrix's train filters (None: the run's own ``--train-filter``)."""
    column = options.transfer_matrix
    if not column:
        return None
    if options.train_filter:
        raise HarnessInputError(
            "--transfer-matrix", "cannot be combined with --train-filter", "the matrix chooses its own train filters"
        )
    filters = transfer_filters(column, spec, data.train.groups.get(column, []))
    _log(options, f"transfer matrix over '{column}': train on all, then on each of "
                  f"{', '.join(f[column][0] for f in filters[1:])}; evaluate on every value")
    return filters


def _record_configuration(store: ResultsStore, spec: BenchmarkSpec, configuration: Configuration, evaluation) -> None:
    """The configuration and its eval texts into the store once, before any run (the main process only)."""
    if not is_main_process():
        return
    with store.lock(spec.name, wait=True):
        try:
            store.write_configuration(configuration)
            # The latest configuration is the one whose command finished last (publish sets it with the
            # leaderboard it copies up); set here only for a benchmark's first configuration.
            if store.current_label(spec.name) is None:
                store.set_current(configuration)
            # The eval texts go to the store once, so the error analysis rebuilds from the store alone.
            store.write_eval_texts(spec.name, configuration.label, evaluation.ids, evaluation.texts)
        except OSError as exc:
            # Nothing has run yet and no run could be recorded: stop in one line, as the lock does.
            raise HarnessInputError(
                str(store.benchmark_dir(spec.name)), f"cannot write to the results directory ({exc.strerror or exc})",
                "free some space or pass a writable --results-dir",
            ) from None


def _execute(options: RunOptions, spec: BenchmarkSpec, jobs: list[Job], priors: list[Prior],
             answer_file: Path | None, summary: RunSummary) -> None:
    """The jobs through the executor, each with its outlook for the time forecast."""
    isolate = options.isolate and not is_distributed()
    if options.quiet:
        from harness.models import quiet_libraries

        quiet_libraries()  # in-process runs draw the libraries' own progress bars otherwise
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as scratch:
        # The answer to the time question, kept for the rest of the command (a suite passes its own).
        answer = answer_file or Path(scratch) / "answer"
        jobs = with_outlooks(jobs, priors, options, spec, answer)
        _run_jobs(options, jobs, isolate, summary)


def _slots(options: RunOptions) -> int:
    """How many runs go at once: the width of a TPE wave (its trials learn from the waves before)."""
    return len(options.devices or []) or options.parallel or 1


def _execute_tuned(options: RunOptions, spec: BenchmarkSpec, store: ResultsStore, jobs: list[Job], speeds, train,
                   answer_file: Path | None, summary: RunSummary) -> None:
    """A tuned budget: every model and seed's trials (each a run scored on validation, spread by the executor),
    then each selected trial's model on test as the model's run (``harness.run.tuning``)."""
    from harness.run import tuning

    registry = options.registry or default_registry_path()
    studies = [tuning.Study(job, store, registry) for job in jobs]
    _log(options, tuning.describe(jobs[0].configuration.budget.tuning))
    attempted: set[str] = set()
    first = True
    while not (summary.declined or summary.interrupted):
        with store.lock(spec.name, wait=True):
            for study in studies:
                tuning.sync(study)
            wave = [trial for study in studies
                    for trial in study.plan(tuning.trials_done(study), _slots(options))
                    if trial.fingerprint not in attempted]
        if not wave:
            break
        attempted.update(trial.fingerprint for trial in wave)
        priors = prior_seconds(wave, store, speeds, train, options.force)
        if first:  # the time ahead counts every trial (TPE's later waves at the shared budget's values)
            later = [study.trial_job(n, {}) for study in studies for n in range(len(study.plan(0, 0)), study.planned)]
            for line in prior_lines(wave + later, priors + prior_seconds(later, store, speeds, train, False), speeds):
                _log(options, line)
            first = False
        _execute(options, spec, wave, priors, answer_file, summary)
    if summary.declined or summary.interrupted:
        return
    selected = [job for study in studies if (job := study.selection()) is not None]
    unfinished = len(studies) - len(selected)
    if unfinished:
        _log(options, f"{unfinished} study(ies) not finished (rerun to finish them): no test run for those")
    # The selected runs train nothing: the time ahead is the trials'.
    _execute(options, spec, selected, [Prior(seconds=0.0) for _ in selected], answer_file, summary)


def _publish(options: RunOptions, store: ResultsStore, spec: BenchmarkSpec, configuration: Configuration,
             summary: RunSummary) -> None:
    """The configuration's leaderboard rebuilt from the store (the main process only)."""
    if not is_main_process():
        return
    from harness.report import publish as report
    from harness.report.board import Leaderboard

    with store.lock(spec.name, wait=True):
        try:
            summary.board = Leaderboard.from_store(store, spec, configuration.label)
            summary.leaderboard = report.publish(store, summary.board)
            if summary.board.busy_warning:  # said even with --quiet: the cost columns of these rows mislead
                log.warning(f"warning: {summary.board.busy_warning}")
            if not options.quiet:
                say(f"leaderboard: {summary.leaderboard}")  # the command's result: on stdout
        except report.NothingToReport as exc:
            # No run of this configuration reached the store (declined, or none recorded): keep the last one.
            _log(options, f"no leaderboard written: {exc}")
        except OSError as exc:
            # The runs are on disk; a report that cannot be written (full disk) is rebuilt by 'report'.
            summary.failed["report"] = f"could not write the report ({exc.strerror or exc})"
            log.warning(f"could not write the report: {exc}; rebuild it with 'report' once there is room")


def make_executor(options: RunOptions):
    """Where the jobs run: here one at a time (the default), here several at once, or on Ray."""
    from harness.run.executors import LocalExecutor, RayExecutor

    if options.executor == "ray":
        gpus = 1.0 if options.gpus_per_run is None else options.gpus_per_run
        return RayExecutor(options.ray_address, options.parallel, gpus if _cuda_available() else 0.0, options.force)
    return LocalExecutor(options.parallel or 1, options.devices)


def _cuda_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _one_at_a_time(options: RunOptions) -> bool:
    return options.executor == "local" and (options.parallel or 1) == 1 and not options.devices


def _label(job: Job) -> str:
    trained_on = "".join(f", trained on {c}={','.join(v)}" for c, v in (job.train_filter or {}).items())
    stage = f", trial {job.trial.number} on validation" if job.trial is not None else (
        f", trial {job.tuning.selected} selected, on test" if job.tuning is not None else "")
    return f"{job.model} (seed {job.seed}{trained_on}{stage})"


def _run_jobs(options: RunOptions, jobs: list[Job], isolate: bool, summary: RunSummary) -> None:
    """Every job through the executor; each outcome is logged and counted, whatever happened to the others."""
    from harness.run.executors import Outcome, execute_job

    distributed = is_distributed()
    one_at_a_time = _one_at_a_time(options)

    def on_start(job: Job, notes: list[str]) -> None:
        for note in notes:
            _log(options, f"- {_label(job)}: {note}")
        if one_at_a_time:
            _log(options, f"- {_label(job)}: running")

    def execute(job: Job, env: dict[str, str]) -> Outcome:
        # Under a launcher every rank trains every run together, in this process: no run lock between ranks.
        return execute_job(job, force=options.force, isolate=isolate, env=env, exclusive=not distributed,
                           on_start=on_start)

    outcomes = make_executor(options).map(jobs, execute)
    try:
        for job, outcome in outcomes:
            _log_outcome(options, job, outcome, one_at_a_time, summary)
    except RunDeclined as exc:
        # The user said no at a forecast: nothing more runs; what finished is kept and reported.
        summary.declined = str(exc)
    except KeyboardInterrupt:
        # Ctrl-C: the executor cancels what is queued and waits for the runs in flight (they got it too); what
        # finished is reported below, then the command exits 130.
        summary.interrupted = True
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()


def _log_outcome(options: RunOptions, job: Job, outcome, one_at_a_time: bool, summary: RunSummary) -> None:
    """Say what became of one job and count it."""
    label = _label(job)
    for note in outcome.notes:
        _log(options, f"  {note}")
    if outcome.status == "bad_input":
        raise HarnessInputError(f"model '{job.model}'", outcome.message, "fix it and rerun")
    if outcome.status == "interrupted":
        raise KeyboardInterrupt
    if outcome.status in ("skipped", "busy"):
        _log(options, f"- {label}: {outcome.message}")
        summary.skipped.append(label)
    elif outcome.status == "completed":
        prefix = "  " if one_at_a_time else f"- {label}: "
        _log(options, f"{prefix}done in {outcome.seconds:.1f}s: accuracy {outcome.accuracy:.4f}, "
                     f"macro-F1 {outcome.f1_macro:.4f}")
        summary.completed.append(label)
    elif outcome.status == "store_failed":
        # Said even with --quiet: the store itself is in trouble, not the model.
        summary.failed[label] = outcome.message
        log.warning(f"- {label}: FAILED: {outcome.message}")
    elif outcome.status == "failed":
        prefix = "  " if one_at_a_time else f"- {label}: "
        _log(options, f"{prefix}FAILED after {outcome.seconds:.1f}s: {outcome.message}")
        summary.failed[label] = outcome.message.split(": ", 1)[-1]


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


def with_outlooks(jobs: list[Job], priors: list[Prior], options: RunOptions, spec: BenchmarkSpec,
                  answer_file: Path) -> list[Job]:
    """Each job with what it needs to put its own forecast into the command's total, and whether it may ask.

    Only runs one at a time add up to a total, and only they may ask (on a terminal, without --yes): parallel
    runs print their own forecast alone.
    """
    one_at_a_time = _one_at_a_time(options)
    ask = one_at_a_time and not options.assume_yes and not is_distributed() and sys.stdin.isatty()
    out = []
    for i, job in enumerate(jobs):
        later = [LaterRun(model=j.model, seconds=p.seconds) for j, p in zip(jobs[i + 1 :], priors[i + 1 :], strict=True)
                 if not p.done] if one_at_a_time else []
        others = sorted(b for b in spec.budgets if b != job.configuration.budget_profile)
        outlook = Outlook(later=later, ask=ask, answer_file=str(answer_file), budgets=others)
        out.append(job.model_copy(update={"outlook": outlook}))
    return out
