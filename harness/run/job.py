"""One run's job: everything it needs, serialisable so it crosses into a child process or a Ray task."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from harness.config.options import RunSettings
from harness.config.schema import BenchmarkSpec, Budget, ModelSpec
from harness.run.forecast import Outlook
from harness.store.results import Configuration, run_fingerprint
from harness.store.results_store import ResultsStore, filter_variant


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
        return self.model_spec.budget_for(seeded)

    @property
    def variant(self) -> str | None:
        """Where in the store this run lives: a run on a filtered train split never replaces the full one."""
        return filter_variant(self.train_filter)

    @property
    def fingerprint(self) -> str:
        entry = {**self.model_spec.identity(), "commit": self.model_commit}
        if self.weights is not None:  # local weights: rebuilt weights are another run (hub and TF-IDF keep theirs)
            entry["weights"] = self.weights
        return run_fingerprint(self.configuration, entry, self.seed, self.train_filter)

    def loaded_spec(self) -> ModelSpec:
        """The model entry to load: a hub source pinned to the commit the job's fingerprint recorded."""
        source = self.model_spec.source
        if source is None or not source.hub_id or not self.model_commit:
            return self.model_spec
        return self.model_spec.model_copy(update={"source": source.model_copy(update={"revision": self.model_commit})})

    def run_dir(self, store: ResultsStore) -> Path:
        return store.run_dir(self.benchmark, self.configuration.label, self.model, self.seed, self.variant)
