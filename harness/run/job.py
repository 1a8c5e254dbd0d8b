"""One run's job: everything it needs, serialisable so it crosses into a child process or a Ray task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from harness.config.options import RunSettings
from harness.config.schema import BenchmarkSpec, Budget, ModelSpec
from harness.run.forecast import Outlook
from harness.store.results import Configuration, TuningRecord, run_fingerprint
from harness.store.results_store import ResultsStore, filter_variant


class TrialPlan(BaseModel):
    """A tuning trial as its study asked for it: its number and the values it tries."""

    model_config = ConfigDict(extra="forbid")

    number: int
    params: dict[str, Any]


class Job(BaseModel):
    """Everything one run needs, serialisable so it can cross into a child process.

    The job carries the benchmark and model entries it was started with (never names to look up again), so a
    run trains exactly what the command validated, whatever files change or shadow them meanwhile.
    """

    model_config = ConfigDict(extra="forbid")

    spec: BenchmarkSpec
    model_spec: ModelSpec
    configuration: Configuration
    seed: int
    train_filter: dict[str, list[str]] | None = None
    settings: RunSettings  # the command's options that a run needs (the store, the data, latency, trackers)
    model_commit: str | None = None  # the hub commit the model entry's revision resolved to when the job was made
    weights: str | None = None  # the hash of the local weights' manifest (harness.models.weights) when the job was made
    outlook: Outlook | None = None  # the command's later runs, for the time forecast (not part of the identity)
    trial: TrialPlan | None = None  # a tuning trial: trained without the validation rows, scored on them only
    tuning: TuningRecord | None = None  # a tuned budget's selected run: the selected trial's model, on test

    @property
    def tried(self) -> dict[str, Any]:
        """The searched values this run uses: its trial's, or the selected trial's (empty when untuned)."""
        if self.trial is not None:
            return self.trial.params
        selected = self.tuning.selected_trial if self.tuning is not None else None
        return selected.params if selected is not None else {}

    @property
    def benchmark(self) -> str:
        return self.spec.name

    @property
    def model(self) -> str:
        return self.model_spec.name

    def run_budget(self) -> Budget:
        """The configuration's shared budget with this run's seed and the model's allowed overrides."""
        # Validated, not copied: a seed past the schema's bound (base seed + --seeds) is refused, not used.
        seeded = Budget.model_validate({**self.configuration.budget.model_dump(), "seed": self.seed})
        budget = self.model_spec.budget_for(seeded)
        # A trial's searched budget fields replace the shared value and any hand-picked override alike.
        searched = {k: v for k, v in self.tried.items() if k in Budget.model_fields}
        return Budget.model_validate({**budget.model_dump(), **searched}) if searched else budget

    def tried_spec(self) -> ModelSpec:
        """The model entry with the searched family parameters this run uses (the entry itself when untuned)."""
        params = {k: v for k, v in self.tried.items() if k not in Budget.model_fields}
        if not params:
            return self.model_spec
        return self.model_spec.model_copy(update={"params": {**(self.model_spec.params or {}), **params}})

    @property
    def variant(self) -> str | None:
        """Where in the store this run lives: a run on a filtered train split never replaces the full one."""
        return filter_variant(self.train_filter)

    @property
    def fingerprint(self) -> str:
        entry = {**self.model_spec.identity(), "commit": self.model_commit}
        if self.weights is not None:  # local weights: rebuilt weights are another run (hub and TF-IDF keep theirs)
            entry["weights"] = self.weights
        if self.trial is not None:
            entry["trial"] = self.trial.model_dump()
        elif self.tuning is not None:
            # The selection (which trial, its values, the space searched, which trials it chose among) makes the
            # run: a failed trial that a rerun completes makes it again, with the study as it now is.
            entry["tuned"] = {"selected": self.tuning.selected, "params": self.tried, "space": self.tuning.space,
                              "completed": [t.number for t in self.tuning.trials if t.status == "completed"]}
        return run_fingerprint(self.configuration, entry, self.seed, self.train_filter)

    def loaded_spec(self) -> ModelSpec:
        """The model entry to load: a hub source pinned to the commit the job's fingerprint recorded."""
        spec = self.tried_spec()
        source = spec.source
        if source is None or not source.hub_id or not self.model_commit:
            return spec
        return spec.model_copy(update={"source": source.model_copy(update={"revision": self.model_commit})})

    def run_dir(self, store: ResultsStore) -> Path:
        if self.trial is not None:
            return store.trial_dir(self.benchmark, self.configuration.label, self.model, self.seed,
                                   self.trial.number, self.variant)
        return store.run_dir(self.benchmark, self.configuration.label, self.model, self.seed, self.variant)

    def trials_dir(self, store: ResultsStore) -> Path:
        """Where this model and seed's tuning study lies (its journal and its trials)."""
        return store.trials_dir(self.benchmark, self.configuration.label, self.model, self.seed, self.variant)
