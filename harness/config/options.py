"""The run options, declared once.

Each field of :class:`RunOptions` is one option of a benchmark run: its type, its default and, in an
:class:`Option` beside it, its command-line flag and help. The ``run`` subcommand's parser (``harness.cli``) and
the keyword arguments of ``harness.api.run_benchmark`` / ``run_suite`` are built from these fields, and every
value from either is validated here, so the command line and Python cannot disagree on a name, a default or a
check. :class:`RunSettings` is the part one run needs; its job carries it into the run's process.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.config.schema import ModelSpec
from harness.config.suites import wants_suite
from harness.core.errors import HarnessInputError

MAX_SEEDS = 100
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # tracker -> the package it needs
_SAME = object()
RESULTS_ENV = "TEXTCLF_RESULTS_DIR"  # the results folder when none is given
RESULTS_HELP = f"results store (default: ${RESULTS_ENV}, else results)"
AT_LEAST_1 = Field(ge=1)  # every whole-number option counts something


@dataclass(frozen=True)
class Option:
    """How an option is spelt on the command line, and what its help says.

    Args:
        flag: the long flag (``--limit-train``).
        help: the help line; the flag's default is the field's.
        short: a short form (``-y``).
        metavar: the value's placeholder in the usage line.
        negate: the flag turns the option off (``--no-isolate`` sets ``isolate`` to False).
        repeat: the flag may be given several times, every value kept (``--train-filter``).
        api_default: the default from Python where it differs from the command line's (only ``quiet``: code
            asks for no progress output), declared here so the difference is stated once.
    """

    flag: str
    help: str
    short: str | None = None
    metavar: str | None = None
    negate: bool = False
    repeat: bool = False
    api_default: Any = _SAME


def default_results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or "results")


class OptionError(ValueError):
    """A value an option refuses: what is wrong and how to fix it, said for the command line (``fix``) and,
    where the wording differs, for Python (``api_fix``)."""

    def __init__(self, problem: str, fix: str | None = None, api_fix: str | None = None):
        super().__init__(problem)
        self.problem, self.fix, self.api_fix = problem, fix, api_fix or fix


class Declared(NamedTuple):
    """One option as the parser and the API see it."""

    name: str
    option: Option
    default: Any
    annotation: Any

    @property
    def api_default(self) -> Any:
        return self.default if self.option.api_default is _SAME else self.option.api_default


def declared_options(model: type[BaseModel]) -> list[Declared]:
    """Every option of an options model in declaration order, with its flag, default and type."""
    out = []
    for name, field in model.model_fields.items():
        (option,) = [m for m in field.metadata if isinstance(m, Option)]
        out.append(Declared(name, option, field.default, field.annotation))
    return out


class RunSettings(BaseModel):
    """What one run needs of its command's options, carried by its job (paths already absolute)."""

    model_config = ConfigDict(extra="forbid")

    results_dir: str
    data_dir: str | None
    latency_samples: int
    latency_warmup: int = 5  # untimed batch-1 calls before the timed ones (not an option)
    save_model: bool
    deployment_variants: bool = True  # the benchmark's onnx / onnx-int8 variants beside each transformer
    show_progress: bool
    log_with: list[str] | None  # the trackers, "all" already expanded


class RunOptions(BaseModel):
    """Every option of a benchmark run (a suite's included), with its flag and help."""

    model_config = ConfigDict(extra="forbid")

    models: Annotated[str | list[str | ModelSpec], Option(
        "--models", "'all' or comma-separated registry names (default: all)")] = "all"
    benchmark: Annotated[str | None, Option(
        "--benchmark", "benchmark name or a YAML path (default: amazon_polarity; with the hub out of reach and no "
        "--data-dir, the sample that ships with the harness); a comma list (sst5,ag_news) runs them all as a suite "
        "and writes results/suites/<a+b>/summary.md")] = None
    budget: Annotated[str | None, Option(
        "--budget", "budget profile of the benchmark (default: its default_budget)")] = None
    data_dir: Annotated[Path | None, Option(
        "--data-dir", "local train/test CSV or Parquet files instead of the hub")] = None
    # Suites: several benchmarks in one command (harness/suite.py).
    suite: Annotated[str | None, Option(
        "--suite", "run a suite YAML (benchmarks/suites/NAME.yaml or a path) and write "
        "results/suites/<suite>/summary.md across its benchmarks", metavar="NAME|PATH")] = None
    data_root: Annotated[Path | None, Option(
        "--data-root", "with a suite or a comma list: a folder holding one data folder per benchmark, DIR/<benchmark> "
        "unless the suite YAML names another (--data-dir names one benchmark's files)", metavar="DIR")] = None
    limit_train: Annotated[int | None, AT_LEAST_1, Option(
        "--limit-train", "stratified train subsample (drawn per seed)")] = None
    limit_test: Annotated[int | None, AT_LEAST_1, Option("--limit-test", "stratified fixed-seed test subsample")] = None
    fixed_train_sample: Annotated[bool, Option(
        "--fixed-train-sample",
        "with a train limit, every seed trains on the same rows (default: each seed draws its own)")] = False
    train_filter: Annotated[dict[str, list[str]] | None, Option(
        "--train-filter", "train only on rows whose column has these values (e.g. lang=en); evaluate on all",
        metavar="COLUMN=V1,V2", repeat=True)] = None
    transfer_matrix: Annotated[str | None, Option(
        "--transfer-matrix", "cross-group transfer in one command: train on all rows, then on each value of this "
        "group column alone (e.g. lang), evaluating every run on every value", metavar="COLUMN")] = None
    seeds: Annotated[int, AT_LEAST_1, Option("--seeds", "train each model with N seeds (mean ± std)")] = 1
    trials: Annotated[int | None, AT_LEAST_1, Option(
        "--trials", "with a tuned budget: N trials per model and seed instead of the profile's (a new "
        "configuration; every model still gets the same number)")] = None
    results_dir: Annotated[Path, Option("--results-dir", RESULTS_HELP)] = Field(None, validate_default=True)
    force: Annotated[bool, Option("--force", "redo runs that are already complete")] = False
    isolate: Annotated[bool, Option(
        "--no-isolate", "run models in this process (default: one process each)", negate=True)] = True
    save_model: Annotated[bool, Option(
        "--no-save-model", "do not keep fine-tuned weights in the store", negate=True)] = True
    latency_samples: Annotated[int, AT_LEAST_1, Option("--latency-samples", "timed batch-1 calls per model")] = 50
    variants: Annotated[bool, Option(
        "--no-variants", "measure PyTorch only, not the benchmark's ONNX Runtime deployment variants",
        negate=True)] = True
    executor: Annotated[Literal["local", "ray"], Option(
        "--executor", "where the grid's runs execute: here (default) or as Ray tasks (pip install '.[ray]')")] = "local"
    parallel: Annotated[int | None, AT_LEAST_1, Option(
        "--parallel", "runs at once: processes on this machine, or the CPUs of a local Ray instance")] = None
    devices: Annotated[list[str] | None, Option(
        "--devices", "one run per GPU at once on this machine (CUDA_VISIBLE_DEVICES set per run)",
        metavar="0,1,2,3")] = None
    ray_address: Annotated[str | None, Option(
        "--ray-address", "a running Ray cluster (default: RAY_ADDRESS, else a local instance for this command)")] = None
    gpus_per_run: Annotated[float | None, Field(ge=0), Option(
        "--gpus-per-run", "with --executor ray: GPUs each run asks for (default: 1 where CUDA is present, else 0)",
        metavar="N")] = None
    log_with: Annotated[Literal["tensorboard", "wandb", "mlflow", "all"] | None, Option(
        "--log-with", "send training metrics to an experiment tracker through Accelerate (must be installed)")] = None
    quiet: Annotated[bool, Option("--quiet", "warnings and errors only", api_default=True)] = False
    assume_yes: Annotated[bool, Option(
        "--yes", "do not ask before training when the forecast is above 30 minutes (asked only on a terminal)",
        short="-y")] = False
    registry: Annotated[Path | None, Option(
        "--registry", "model registry YAML (default: ./models_registry.yaml, else the one shipped)")] = None
    benchmarks_dir: Annotated[Path | None, Option(
        "--benchmarks-dir", "folder of benchmark YAMLs (default: ./benchmarks, then the ones shipped)")] = None

    # ----- values as the command line or Python give them -----------------------------------------------

    @field_validator("benchmark", "suite", mode="before")
    @classmethod
    def _names(cls, value):
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, (list, tuple)):  # several benchmarks: the comma list of the command line
            return ",".join(os.fspath(v) if isinstance(v, os.PathLike) else str(v) for v in value)
        return value

    @field_validator("results_dir", mode="before")
    @classmethod
    def _results_dir(cls, value):
        return default_results_dir() if value is None else value  # None: the default, read when the options are

    @field_validator("train_filter", mode="before")
    @classmethod
    def _train_filter(cls, value):
        if value is None or isinstance(value, Mapping):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()} if value else None
        out: dict[str, list[str]] = {}
        for item in [value] if isinstance(value, str) else value:  # COLUMN=V1,V2, as often as the flag is given
            column, sep, values = str(item).partition("=")
            if not sep or not column or not values:
                raise OptionError(f"{item!r} is not COLUMN=V1,V2", "write e.g. --train-filter lang=en",
                                  "pass e.g. train_filter={'lang': ['en']}")
            out.setdefault(column, []).extend(v for v in values.split(",") if v)
        return out or None

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value):
        if value is None:
            return None
        devices = [d.strip() for d in value.split(",")] if isinstance(value, str) else [str(d).strip() for d in value]
        devices = [d for d in devices if d]
        if not devices or not all(d.isdigit() for d in devices):
            raise OptionError(f"{value!r} is not a list of device numbers", "write e.g. --devices 0,1,2,3",
                              "pass e.g. devices='0,1,2,3'")
        return devices

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int) -> int:
        if value > MAX_SEEDS:
            raise OptionError(f"must be between 1 and {MAX_SEEDS}, got {value}", "pass a smaller --seeds",
                              "pass a smaller seeds")
        return value

    @field_validator("log_with")
    @classmethod
    def _trackers_installed(cls, value):
        # Checked now, so a missing tracker stops the command in one line before anything trains.
        for name in TRACKERS if value == "all" else [value] if value else []:
            if importlib.util.find_spec(TRACKERS[name]) is None:
                raise OptionError(f"the {name} tracker is not installed", f"pip install {TRACKERS[name]}")
        return value

    # ----- reading them -------------------------------------------------------------------------------

    @classmethod
    def declared(cls) -> list[Declared]:
        """Every option in declaration order, with its flag, default and type."""
        return declared_options(cls)

    @classmethod
    def validated(cls, values: Mapping[str, Any], caller: str | None = None) -> RunOptions:
        """The options from ``values``, checked; bad ones stop with one line naming the option.

        Args:
            values: option name -> value (the command line's parsed flags, or a function's keyword arguments).
            caller: None for the command line (errors name the flag, every option is given); else the Python
                function the values were passed to (errors name the option; options not given take their
                Python default).
        """
        if caller is not None:
            names = list(cls.model_fields)
            for name in values:
                if name not in names:
                    close = difflib.get_close_matches(name, names, n=1)
                    raise HarnessInputError(
                        f"{caller}({name}=...)", "not an option",
                        f"did you mean {close[0]}?" if close else f"the options are {', '.join(names)}",
                    )
            values = {d.name: d.api_default for d in cls.declared() if d.option.api_default is not _SAME} | dict(values)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _input_error(exc, caller) from None

    @property
    def is_suite(self) -> bool:
        """Whether these options ask for a suite: ``suite``, or a comma list of benchmarks."""
        return wants_suite(self.benchmark, self.suite)

    def one_benchmark(self) -> None:
        """Refuse what only a suite uses, for a command that runs one benchmark."""
        if self.data_root is not None:
            raise HarnessInputError(
                "--data-root", "applies to several benchmarks (a comma list or --suite)",
                "pass --data-dir for one benchmark",
            )

    def split_models(self) -> tuple[str, list[ModelSpec]]:
        """Registry names (a comma list, "" for none) and the entries built in code."""
        if isinstance(self.models, str):
            return self.models, []
        names = ",".join(m for m in self.models if isinstance(m, str))
        return names, [m for m in self.models if isinstance(m, ModelSpec)]

    @property
    def trackers(self) -> list[str] | None:
        return None if self.log_with is None else list(TRACKERS) if self.log_with == "all" else [self.log_with]

    def run_settings(self) -> RunSettings:
        """The part of the options every run of this command needs, carried by its job."""
        return RunSettings(
            results_dir=str(self.results_dir.resolve()),
            data_dir=str(self.data_dir.resolve()) if self.data_dir else None,
            latency_samples=self.latency_samples,
            save_model=self.save_model,
            deployment_variants=self.variants,
            show_progress=not self.quiet,
            log_with=self.trackers,
        )


def _input_error(exc: ValidationError, caller: str | None) -> HarnessInputError:
    """The first problem of a validation, as one line naming the flag (command line) or the option (Python)."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else ""
    field = RunOptions.model_fields.get(name)
    flag = next((m.flag for m in field.metadata if isinstance(m, Option)), name) if field else name
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, OptionError):
        where = flag if caller is None else name
        return HarnessInputError(where, cause.problem, cause.fix if caller is None else cause.api_fix)
    problem = f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {repr(error['input'])[:80]}"
    if caller is None:
        return HarnessInputError(flag, problem, f"see 'textclf-bench run -h' for {flag}")
    return HarnessInputError(name, problem, f"see help({caller}) for {name}")


class CompareOptions(BaseModel):
    """The options of ``compare A B``: which store and benchmark, the metric and what counts as a regression."""

    model_config = ConfigDict(extra="forbid")

    benchmark: Annotated[str | None, Option(
        "--benchmark", "benchmark name or a YAML path (default: the one the store or folders hold)")] = None
    results_dir: Annotated[Path, Option(
        "--results-dir", RESULTS_HELP + "; where A and B are looked up when they are labels")] = Field(
        None, validate_default=True)
    metric: Annotated[str | None, Option(
        "--metric", "the metric of the paired difference and of --fail-on-regression (default: the benchmark's "
        "main_metric); one with an interval: accuracy, f1_macro, roc_auc, mcc, balanced_accuracy")] = None
    alpha: Annotated[float, Field(gt=0, lt=1), Option(
        "--alpha", "significance level of the paired tests (default: 0.05)")] = 0.05
    min_drop: Annotated[float, Field(ge=0), Option(
        "--min-drop", "a significant drop counts as a regression only when larger than this (default: 0)")] = 0.0
    fail_on_regression: Annotated[bool, Option(
        "--fail-on-regression", "exit 1 when a model present in both is significantly worse in B")] = False
    intersection: Annotated[bool, Option(
        "--intersection", "compare on the test examples both sides scored when they differ (default: refuse)")] = False
    json_path: Annotated[Path | None, Option(
        "--json", "also write the comparison as JSON to this file", metavar="PATH")] = None
    n_boot: Annotated[int, AT_LEAST_1, Option(
        "--n-boot", "resamples of the paired bootstrap (default: 10,000)")] = 10_000

    @field_validator("results_dir", mode="before")
    @classmethod
    def _results_dir(cls, value):
        return default_results_dir() if value is None else value

    @classmethod
    def declared(cls) -> list[Declared]:
        return declared_options(cls)

    @classmethod
    def validated(cls, values: Mapping[str, Any]) -> CompareOptions:
        """The options from the parsed flags, checked; a bad one stops with one line naming its flag."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = cls.model_fields.get(str(error["loc"][0]) if error["loc"] else "")
            flag = next((m.flag for m in field.metadata if isinstance(m, Option)), "compare") if field else "compare"
            problem = f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {repr(error['input'])[:80]}"
            raise HarnessInputError(flag, problem, "see 'textclf-bench compare -h'") from None
