"""A tuned budget: the same number of trials for every model, each a run scored on validation only.

One Optuna study per (model, seed), kept in a journal file beside its trials
(``configs/<label>/trials/<model>/seed-<seed>/study.journal``), so several commands, processes and Ray workers
share it: the command that plans asks the study for its trials under the benchmark's lock (never two commands
asking the same trial), each trial runs as a job of the existing executors and tells its validation score, and
a rerun reads the trials already asked instead of asking again. The trials are also runs in the store
(``trial-<k>/result.json``), which stays the truth: a trial is done when its result is, whatever the journal says.

When every trial of a model and seed has a result, the best completed one by the benchmark's main metric on
validation (ties: the lowest trial number) is selected, and its saved model is evaluated on test as the model's
normal run (``runs/<model>/seed-<seed>``), carrying the whole study (``store.results.TuningRecord``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.config.schema import BenchmarkSpec, Budget, Distribution, Tuning
from harness.core.errors import HarnessInputError
from harness.metrics.extra import main_column
from harness.run.job import Job, TrialPlan
from harness.store.results import TrialRecord, TuningRecord
from harness.store.results_store import ResultsStore

JOURNAL_FILE = "study.journal"
# Samplers whose trials do not depend on earlier trials' scores: all of a study's trials are asked at once.
ORDER_FREE = ("qmc", "random")

log = logging.getLogger("harness")


def model_space(spec: BenchmarkSpec, tuning: Tuning, job: Job, registry: Path | str | None = None,
                ) -> tuple[dict[str, Distribution], bool]:
    """The dimensions this model searches: the benchmark's fields the model reads (budget fields its family uses,
    its family's parameters), narrowed by its entry's ``tuning_space``; and whether the entry narrowed them."""
    from harness.models import family_class, params_schema

    family = family_class(job.model_spec.family)
    used = set(getattr(family, "budget_fields", Budget.model_fields)) | set(
        getattr(params_schema(job.model_spec.family), "model_fields", {}))
    space = {name: d for name, d in tuning.space.items() if name in used}
    narrowing = job.model_spec.tuning_space or {}
    where = f"{registry} [model '{job.model}']" if registry else f"model '{job.model}'"
    for name, inner in narrowing.items():
        outer = space.get(name)
        if outer is None:
            raise HarnessInputError(where, f"tuning_space.{name}: not searched for this model by benchmark "
                                    f"{spec.name}'s tuning space ({', '.join(space) or 'none'})",
                                    "narrow only fields the benchmark searches")
        if not inner.within(outer):
            raise HarnessInputError(where, f"tuning_space.{name}: {_shown(inner)} is not within the benchmark's "
                                    f"{_shown(outer)}", "a model may narrow the space, never widen it")
        space[name] = inner
    return space, bool(narrowing)


def _shown(d: Distribution) -> str:
    if d.choices is not None:
        return f"choices {d.choices}"
    low, high = d.bounds()
    return f"[{low}, {high}]{' (log)' if d.log else ''}"


def _distributions(space: dict[str, Distribution]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for name, d in sorted(space.items()):
        if d.choices is not None:
            out[name] = CategoricalDistribution(d.choices)
        elif d.integer:
            out[name] = IntDistribution(int(d.low), int(d.high), log=d.log)
        else:
            out[name] = FloatDistribution(d.low, d.high, log=d.log)
    return out


def _sampler(tuning: Tuning):
    import optuna

    if tuning.sampler == "qmc":
        # Scrambled with the seed, so the seed chooses the points; Optuna's QMC sampler draws its first trial
        # with its seeded independent sampler and the rest from the sequence, all before any has run.
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=tuning.seed,
                                          warn_independent_sampling=False)
    if tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=tuning.seed)
    return optuna.samplers.TPESampler(seed=tuning.seed)


def _study(job: Job, store: ResultsStore, create: bool = True):
    """The (model, seed)'s study in its journal file; None when ``create`` is False and there is none yet."""
    import warnings

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = job.trials_dir(store) / JOURNAL_FILE
    if not create and not path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning = job.configuration.budget.tuning
    direction = "maximize" if main_column(job.spec).higher_is_better else "minimize"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.create_study(study_name=f"{job.model}-seed-{job.seed}", direction=direction,
                                   storage=JournalStorage(JournalFileBackend(str(path))), sampler=_sampler(tuning),
                                   load_if_exists=True)


class Study:
    """One (model, seed)'s tuning study as a command sees it: its space, its trials' jobs and their results."""

    def __init__(self, job: Job, store: ResultsStore, registry: Path | str | None = None):
        self.job, self.store = job, store
        self.tuning: Tuning = job.configuration.budget.tuning
        self.space, self.narrowed = model_space(job.spec, self.tuning, job, registry)
        # A model that reads none of the searched fields would repeat one run: it gets that one trial.
        self.planned = self.tuning.trials if self.space else 1

    def trial_job(self, number: int, params: dict[str, Any]) -> Job:
        return self.job.model_copy(update={"trial": TrialPlan(number=number, params=params), "outlook": None})

    def plan(self, finished: int, slots: int) -> list[Job]:
        """Every trial asked so far, after asking the study for the ones this wave adds (all of them for an
        order-free sampler; up to ``slots`` beyond the ``finished`` ones for TPE). Call under the benchmark lock."""
        import warnings

        import optuna

        study = _study(self.job, self.store)
        target = self.planned if self.tuning.sampler in ORDER_FREE else min(self.planned, finished + slots)
        distributions = _distributions(self.space)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for _ in range(target - len(study.trials)):
                study.ask(distributions)
        return [self.trial_job(t.number, dict(t.params)) for t in sorted(study.trials, key=lambda t: t.number)
                if t.number < self.planned]

    def records(self) -> dict[int, TrialRecord]:
        """The trials with a result in the store, completed (with predictions backing them) or failed."""
        study = _study(self.job, self.store, create=False)
        out = {}
        for trial in sorted(study.trials, key=lambda t: t.number) if study is not None else []:
            job = self.trial_job(trial.number, dict(trial.params))
            if trial.number >= self.planned:
                continue
            result, _ = self.store.validate_run(job.run_dir(self.store))
            if result is None or result.fingerprint != job.fingerprint or result.trial is None:
                continue
            out[trial.number] = result.trial
        return out

    def selection(self) -> Job | None:
        """The model's tuned run (the selected trial on test), once every trial has a result; else None."""
        records = self.records()
        if len(records) < self.planned:
            return None
        metric = main_column(self.job.spec)
        completed = [r for r in records.values() if r.status == "completed" and r.validation_score is not None]
        sign = -1 if metric.higher_is_better else 1
        best = min(completed, key=lambda r: (sign * r.validation_score, r.number)) if completed else None
        record = TuningRecord(
            metric=metric.name, direction="maximize" if metric.higher_is_better else "minimize",
            trials_planned=self.planned, trials=[records[n] for n in sorted(records)],
            selected=best.number if best else None,
            space={name: d.model_dump(exclude_defaults=True) for name, d in sorted(self.space.items())},
            narrowed=self.narrowed, sampler=self.tuning.sampler, validation=self._validation_line(best),
        )
        return self.job.model_copy(update={"tuning": record})

    def _validation_line(self, best: TrialRecord | None) -> str:
        if best is not None:
            job = self.trial_job(best.number, best.params)
            result = self.store.load_result(job.run_dir(self.store))
            line = getattr(result.data, "validation", None) if result is not None and result.data else None
            if line:
                return str(line)
        return "validation rows (no trial completed)"


def tell(job: Job, store: ResultsStore, score: float) -> None:
    """Tell the study a finished trial's score (its result is already in the store, which stays the truth): a
    journal that cannot take it costs the sampler that value, never the trial."""
    try:
        import optuna

        study = _study(job, store)
        trial = next((t for t in study.trials if t.number == job.trial.number), None)
        # A failed trial is left "running" in the journal on purpose: a rerun retries it under the same number
        # and values, and Optuna cannot tell a trial twice (a FAIL would keep the retry's score from TPE).
        if trial is not None and trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(job.trial.number, score)
    except Exception as exc:  # noqa: BLE001 - the trial is recorded; the journal is a copy for the sampler
        log.warning(f"  could not tell trial {job.trial.number} of {job.model} (seed {job.seed}) to its study: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")


def sync(study: Study) -> None:
    """Tell the study the scores of trials finished in the store but not in its journal (a process killed
    between writing its result and telling it), so TPE's next wave learns from every finished trial."""
    for number, record in study.records().items():
        if record.status == "completed":
            tell(study.trial_job(number, record.params), study.store, record.validation_score)


def trials_done(study: Study) -> int:
    return len(study.records())


def describe(tuning: Tuning) -> str:
    """One line for the command's start: what the tuned budget does."""
    return (f"tuning: {tuning.trials} trial(s) per model and seed ({tuning.sampler} sampler, seed {tuning.seed}) over "
            f"{', '.join(sorted(tuning.space))}, each scored on validation only; the best by the main metric is "
            "evaluated on test")

