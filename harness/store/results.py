"""The typed, versioned record of one run (``result.json``) and of the configuration it belongs to.

Every writer and every reader of a result goes through this module: the runner builds a :class:`RunResult`,
the store validates what it reads back with it, and the report, the exports and the notebooks use its
attributes instead of walking dictionaries with string paths. Like MTEB's ``TaskResult``, a result carries
its schema version, so a result written by another version of the harness is either read as it is or
refused with one line that says why.

Two identities matter (see :class:`Configuration`):

- the **configuration**: everything every model of a comparison shares and that changes the numbers
  (benchmark definition, data fingerprint, budget values, limits, subsampling policy). Runs of different
  configurations live side by side in the store and never replace each other.
- the **run**: a configuration plus one model entry, one seed and the train filter; its ``fingerprint``
  decides whether a stored run is the one being asked for.

Measurement blocks that model families extend with their own figures (``training``, ``model_info``,
``device``, ``data``) accept extra keys; everything the report reads is declared here.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from harness.config.schema import BenchmarkSpec, Budget, register_metric_names
from harness.metrics.columns import MetricColumn, columns

# A benchmark's main_metric is checked against the catalogue when its YAML is read (config cannot import it).
register_metric_names([column.name for column in columns()])

SCHEMA_VERSION = 2
RESULT_FILE = "result.json"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A block of measurements a model family may extend: unknown keys are kept, not rejected."""

    model_config = ConfigDict(extra="allow")


# ----- identity ------------------------------------------------------------------------------------------


def stable_hash(payload: Any, length: int = 16) -> str:
    """A short SHA-256 of a JSON-able payload with sorted keys: equal payloads, equal hashes."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


# What of a benchmark YAML changes the numbers: everything but its words, its budget profiles (the budget
# a configuration ran with is a field of its own), the deployment variants measured beside each model and the
# main metric and the extra metrics (they order and score the same predictions, at report time).
_NOT_DEFINITION = {"description", "budgets", "default_budget", "variants", "main_metric", "extra_metrics"}
# Fields that change the numbers only when set: at their default they are left out, so the configurations made
# before they existed keep their ids.
_DEFINITION_WHEN_SET = {"dedupe": "keep"}


def benchmark_definition(spec: BenchmarkSpec) -> dict:
    """The part of a benchmark a configuration's ``benchmark_hash`` covers (columns, labels, splits, filters)."""
    unset = {name for name, default in _DEFINITION_WHEN_SET.items() if getattr(spec, name) == default}
    return spec.model_dump(exclude=_NOT_DEFINITION | unset)


def benchmark_hash(spec: BenchmarkSpec) -> str:
    """The ``benchmark_hash`` a configuration of this benchmark definition carries."""
    return stable_hash(benchmark_definition(spec))


class Configuration(_Closed):
    """What every run of one comparison shares. Two runs are comparable exactly when this is equal.

    ``id`` hashes the other fields; ``label`` is the directory name in the store: readable first
    (profile, train and test rows), the hash last so two configurations never share a directory.
    """

    id: str
    label: str
    benchmark: str
    benchmark_hash: str = Field(description="hash of the benchmark definition (columns, labels, splits, filters)")
    budget_profile: str
    budget: Budget = Field(description="the shared budget: the profile with CLI limits applied, before overrides")
    limit_train: int | None = None
    limit_test: int | None = None
    train_sample: Literal["per-seed", "fixed"] = "per-seed"
    data: dict[str, Any] = Field(description="the data's fingerprint: file hashes, or hub id and resolved revision")

    @classmethod
    def build(
        cls,
        *,
        benchmark: str,
        benchmark_definition: dict,
        budget_profile: str,
        budget: Budget,
        limit_train: int | None,
        limit_test: int | None,
        train_sample: str,
        data: dict,
    ) -> Configuration:
        key = {
            "benchmark": benchmark,
            "benchmark_hash": stable_hash(benchmark_definition),
            "budget_profile": budget_profile,
            # The seed is a run's, not the configuration's: seeds of one comparison share a configuration.
            # A tuning budget is part of the key only where there is one: untuned configurations keep their ids.
            "budget": budget.model_dump(exclude={"seed", *(() if budget.tuning else ("tuning",))}),
            "limit_train": limit_train,
            "limit_test": limit_test,
            "train_sample": train_sample,
            "data": data,
        }
        config_id = stable_hash(key, 10)
        train = limit_train or budget.train_examples
        test = limit_test or budget.test_examples
        label = f"{budget_profile}-train{train or 'all'}-test{test or 'all'}-{config_id}"
        return cls(id=config_id, label=label, **{**key, "budget": budget})

    def describe(self) -> str:
        """One line for people: profile, rows, sampling."""
        train = self.limit_train or self.budget.train_examples
        test = self.limit_test or self.budget.test_examples
        rows = f"train {'all rows' if not train else f'{train:,} rows'}, test {'all rows' if not test else f'{test:,} rows'}"
        sample = "" if not train else f", train rows drawn {'per seed' if self.train_sample == 'per-seed' else 'once for all seeds'}"
        return f"budget '{self.budget_profile}', {rows}{sample}"


def run_fingerprint(configuration: Configuration, model_entry: dict, seed: int, train_filter: dict | None) -> str:
    """What makes a stored run the run being asked for: its configuration, model entry, seed and train filter."""
    return stable_hash(
        {"configuration": configuration.id, "model": model_entry, "seed": int(seed), "train_filter": train_filter}
    )


# ----- measurements --------------------------------------------------------------------------------------


class ClassScores(_Closed):
    precision: float
    recall: float
    f1: float
    support: int


def _column_field(column: MetricColumn) -> tuple[Any, Any]:
    """A catalogue column's field: required as it was declared, or optional (None) for a column added later."""
    if not column.required:
        return float | None, Field(None, description=column.description + " (absent in results written before it)")
    return (float | None) if column.nullable else float, Field(description=column.description)


# One field per column of the catalogue (harness.metrics.columns), between the count and the per-class blocks.
Metrics = create_model(
    "Metrics",
    __base__=_Closed,
    __doc__="Scores on the evaluation split, computed from per-example predictions (``harness.metrics.quality``).",
    __module__=__name__,
    n=(int, ...),
    **{column.name: _column_field(column) for column in columns()},
    per_class=(dict[str, ClassScores], ...),
    roc_auc_per_class=(list[float | None], ...),
    roc_auc_note=(str | None, None),
    confusion_matrix=(list[list[int]], ...),
)


class GroupScores(_Closed):
    n: int
    accuracy: float
    f1_macro: float
    roc_auc: float | None


class LatencySummary(_Closed):
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    repetitions: int
    warmup: int


class Inference(_Closed):
    eval_examples: int
    eval_seconds: float
    throughput_samples_per_s: float
    throughput_warmup_examples: int
    eval_batch_size: int
    latency_batch1_end_to_end: LatencySummary | None = None
    latency_batch1_model_only: LatencySummary | None = None


class PhaseMemory(_Closed):
    rss_start_bytes: int | None = None
    rss_peak_bytes: int | None = None
    rss_method: str | None = None
    cuda_start_allocated_bytes: int | None = None
    cuda_peak_allocated_bytes: int | None = None
    cuda_peak_reserved_bytes: int | None = None


class Memory(_Closed):
    train: PhaseMemory
    inference: PhaseMemory


class TrainingForecast(_Closed):
    """The training time a run forecast from its own first steps (or first sample), before spending the rest."""

    seconds: float = Field(description="the whole training, forecast (what was spent before it included)")
    spent_seconds: float = Field(description="training seconds already spent when the forecast was made")
    measured_steps: int = Field(description="steps (or sample fits) the forecast was measured on")
    measured_seconds: float
    basis: str = Field(description="what was measured, in words")


class Training(_Open):
    """What ``fit`` reported; families add their own keys (token counts, loss curve, precision choice)."""

    train_seconds: float | None = None
    wall_seconds: float | None = None
    samples_per_second: float | None = None
    tokens_per_second: float | None = None
    mfu: float | None = None
    loss_curve: list[dict[str, float]] = Field(default_factory=list)
    precision: Any = None
    forecast: TrainingForecast | None = None


class ModelInfo(_Open):
    parameters: int | None = None
    size_on_disk_bytes: int | None = None


class ThreadShare(_Closed):
    """The run's share of the usable cores (harness.metrics.machine): every one alone, a part beside others."""

    threads: int
    runs_at_once: int | None = Field(None, description="runs the command had going at once (None: a Ray task)")
    usable_cores: int
    given_by: str = Field(description='what set it: "one run at a time", "--parallel 2", "Ray task num_cpus=1"')
    beside_other_commands: list[int] | None = Field(
        None, description="the threads it took while other commands' harness runs trained on this host "
        "(harness.metrics.machine.rebalance_threads); absent when it met none")


class Device(_Open):
    device: str = "cpu"
    device_name: str = "?"
    threads: dict[str, Any] = Field(default_factory=dict)
    thread_share: ThreadShare | None = Field(None, description="absent in runs stored before thread shares")


class LoadWindow(_Closed):
    """How busy the machine was during one timed window (harness.metrics.machine.measure_load)."""

    wall_seconds: float
    cpu_seconds: float = Field(description="this process's CPU time over the window, every thread")
    cores_used: float | None = Field(None, description="CPU seconds per wall second")
    load_before: float | None = Field(None, description="1-minute load average at the start (None: not available)")
    load_after: float | None = None
    usable_cores: int
    threads: int
    on_gpu: bool = False
    busy: str | None = Field(None, description="why the window counts as measured on a busy machine, or None")


class OtherRun(_Closed):
    """Another harness run that trained on the same machine while this one ran (harness.run.running)."""

    pid: int
    host: str
    run: str = Field(description="what it ran: benchmark, model and seed")


class MachineLoad(_Closed):
    """The machine while the run was measured: each timed window's load, and the other runs beside it."""

    windows: dict[str, LoadWindow] = Field(default_factory=dict, description="training, throughput, latency")
    others: list[OtherRun] = Field(default_factory=list)


class Leakage(_Closed):
    """Texts of the evaluation split that also occur in the train split (before filters and sampling), compared
    after Unicode NFKC, whitespace and case normalisation (``data.loading.normalized_text``)."""

    eval_texts: int = Field(description="texts of the evaluation split as scored (after its sampling)")
    in_train: int = Field(description="of those, how many also occur in the train split")
    by_group: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="group column -> value -> eval texts also in train"
    )
    train_rows_matching: int = Field(description="train rows whose text is one of them (several may share one)")
    dedupe: Literal["keep", "drop_from_train"] = "keep"
    dropped_from_train: int = Field(0, description="train rows removed by dedupe: drop_from_train")


class DataInfo(_Open):
    kind: str
    train_rows: int
    eval_rows: int
    eval_split: str
    dropped_empty_texts: dict[str, int] = Field(default_factory=dict)
    leakage: Leakage | None = Field(None, description="eval texts also in train; absent in results written before it")
    train_filter: dict[str, list[str]] | None = None
    train_sample_seed: int | None = None
    classes_without_train_rows: dict[str, int] | None = Field(
        None, description="classes no train row (as trained on) holds -> their rows in the evaluation split; absent "
        "in results written before it")
    train_split_rows: int | None = Field(None, description="rows of the train split read, before filter and sample")
    eval_split_rows: int | None = Field(None, description="rows of the evaluation split read, before its sample")


class SplitTruncation(_Closed):
    """How many texts the model's tokenizer cut at ``max_length`` (0 for models that read whole texts)."""

    texts: int
    truncated: int
    share: float
    by_group: dict[str, dict[str, float]] = Field(default_factory=dict, description="column -> value -> share")


class Truncation(_Closed):
    max_length: int | None
    applies: bool = Field(description="False for models that read every text whole (TF-IDF)")
    train: SplitTruncation
    eval: SplitTruncation


class Environment(_Closed):
    harness_version: str
    harness_source_sha256: str | None = None
    git_commit: str | None = None
    git_modified: bool | None = Field(None, description="the harness's own code differs from its commit")
    libraries: dict[str, str | None] = Field(default_factory=dict)
    finished_at: str | None = None


class RunError(_Closed):
    type: str
    message: str
    traceback_tail: list[str] = Field(default_factory=list)


class PairedTest(_Closed):
    """McNemar's test of a deployment variant's errors against its own PyTorch model's, on the same examples."""

    b: int = Field(description="PyTorch right, the variant wrong")
    c: int = Field(description="PyTorch wrong, the variant right")
    statistic: float
    p_value: float
    method: str


class DeploymentVariant(_Closed):
    """The trained model served another way (ONNX Runtime fp32, int8), measured on the same test texts."""

    status: Literal["completed", "failed", "skipped"]
    reason: str | None = Field(None, description="why it failed or was skipped, one line")
    runtime: str | None = None
    file: str | None = Field(None, description="the file beside the saved weights it serves from")
    size_on_disk_bytes: int | None = None
    export_seconds: float | None = None
    quantize_seconds: float | None = None
    accuracy: float | None = None
    f1_macro: float | None = None
    agreement_with_pytorch: float | None = Field(None, description="share of test texts with the PyTorch label")
    max_probability_difference: float | None = Field(None, description="largest |p - p_pytorch| over texts and classes")
    paired_test: PairedTest | None = None
    inference: Inference | None = None
    memory: PhaseMemory | None = None

    def verdict(self, pytorch_accuracy: float | None, alpha: float = 0.05) -> str:
        """What the paired test says of the accuracy this variant keeps: "no significant loss" when McNemar's
        p >= ``alpha``, else "loses 0.8 points, p = 0.01" (or "gains ...")."""
        if self.status != "completed" or self.paired_test is None or self.accuracy is None or pytorch_accuracy is None:
            return f"{self.status}: {self.reason}" if self.reason else self.status
        p = self.paired_test.p_value
        if p >= alpha:
            return "no significant loss"
        points = 100 * (self.accuracy - pytorch_accuracy)
        shown = f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"
        return f"{'loses' if points < 0 else 'gains'} {abs(points):.1f} points, p = {shown}"


class TrialRecord(_Closed):
    """One trial of a tuning study: its number, the values it tried, and its score on validation."""

    number: int
    params: dict[str, Any] = Field(description="the searched budget fields and family parameters, as tried")
    validation_score: float | None = Field(None, description="the main metric on validation (None: failed)")
    status: Literal["completed", "failed"]
    train_seconds: float | None = None


class TuningRecord(_Closed):
    """A model and seed's tuning study, as its selected run records it: every trial, and the one chosen."""

    metric: str = Field(description="the main metric the trials were selected by")
    direction: Literal["maximize", "minimize"]
    trials_planned: int
    trials: list[TrialRecord]
    selected: int | None = Field(description="the selected trial's number (None: no trial completed)")
    space: dict[str, Any] = Field(description="the searched dimensions this model got (after any narrowing)")
    narrowed: bool = Field(description="the model's registry entry narrowed the benchmark's space")
    sampler: str
    validation: str = Field(description="what the trials were scored on, one line")

    @property
    def selected_trial(self) -> TrialRecord | None:
        return next((t for t in self.trials if t.number == self.selected), None)


class RunResult(_Closed):
    """One (configuration, model, seed, train filter) run: what it was, how it scored, what it cost."""

    schema_version: Literal[2] = SCHEMA_VERSION
    status: Literal["completed", "failed"]
    benchmark: str
    model: str
    seed: int
    family: str | None = None
    configuration: Configuration
    fingerprint: str
    train_filter: dict[str, list[str]] | None = None
    budget: Budget | None = Field(None, description="the budget this run trained with (overrides applied)")
    budget_overrides: dict[str, float] = Field(default_factory=dict)
    budget_fields_used: list[str] = Field(default_factory=list, description="budget fields this family reads")
    precision: str | None = Field(
        None, description="the precision the run trained in, resolved from the budget's (auto: measured); a resumed run keeps it"
    )
    model_settings: dict[str, Any] = Field(default_factory=dict, description="the family's own settings")
    trust_remote_code: bool = False
    data: DataInfo | None = None
    metrics: Metrics | None = None
    group_metrics: dict[str, dict[str, GroupScores]] = Field(default_factory=dict)
    training: Training | None = None
    inference: Inference | None = None
    memory: Memory | None = None
    model_info: ModelInfo | None = None
    truncation: Truncation | None = None
    device: Device | None = None
    load: MachineLoad | None = Field(None, description="the machine's load while measured; absent in older runs")
    environment: Environment | None = None
    error: RunError | None = None
    deployment_variants: dict[str, DeploymentVariant] = Field(
        default_factory=dict, description="the model served other ways (onnx, onnx-int8); empty for older runs"
    )
    tuning: TuningRecord | None = Field(
        None, description="the tuning study this run was selected by (its trials scored on validation); None: untuned"
    )
    trial: TrialRecord | None = Field(
        None, description="set on a tuning trial's own result (scored on validation, never on test)"
    )

    @model_validator(mode="after")
    def _status_consistent(self) -> RunResult:
        if self.status == "completed":
            missing = [k for k in ("metrics", "training", "inference", "data") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a completed run must record {', '.join(missing)}")
        elif self.error is None:
            raise ValueError("a failed run must record its error")
        return self

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


class ResultReadError(Exception):
    """A stored result that cannot be used: unreadable, of another schema, or inconsistent."""


def parse_result(text: str, where: str | Path = RESULT_FILE) -> RunResult:
    """Validate a stored result; any problem becomes one line naming the file, the field and the fix."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultReadError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}); the run is redone") from None
    if not isinstance(raw, dict):
        raise ResultReadError(f"{where}: not a result object; the run is redone")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        found = "no schema_version (written before versioned results)" if version is None else f"schema {version}"
        raise ResultReadError(
            f"{where}: {found}, this harness reads schema {SCHEMA_VERSION}; rerun to rebuild it "
            "(older stores are not read: move them away or rerun)"
        )
    try:
        return RunResult.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise ResultReadError(f"{where}: field '{field}': {err['msg']}; the run is redone") from None


def read_result(path: Path) -> RunResult:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultReadError(f"{path}: cannot be read ({type(exc).__name__}); the run is redone") from None
    return parse_result(text, path)


def json_schema() -> dict:
    """The JSON Schema of ``result.json`` (also written to docs/result.schema.json)."""
    return RunResult.model_json_schema()


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


if __name__ == "__main__":  # python -m harness.store.results > docs/result.schema.json
    print(json.dumps(json_schema(), indent=2))
