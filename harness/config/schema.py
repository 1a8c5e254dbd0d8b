"""Typed schemas for everything a user writes: benchmarks, the model registry and run options.

Every schema forbids unknown keys, so a misspelt field fails loudly instead of being ignored.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic import Strict as StrictType

from harness.core.errors import HarnessInputError

# Names become directory names in the results store: keep them to a safe alphabet so a name in YAML
# can never point outside the results directory.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# A budget profile's name starts its configuration's folder name, f"{profile}-train{rows}-test{rows}-{id}": rows
# have at most 10 digits (MAX_ROWS) and the id 10, so 42 characters besides the name, and the whole is a SAFE_NAME.
MAX_BUDGET_NAME = 100 - len("-train1000000000-test1000000000-") - 10


# A package name as Python spells a top-level import name: letters, digits and '_', no dots.
PACKAGE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _plain_number(value: Any) -> Any:
    # YAML reads `true` as a boolean and pydantic's lax mode takes it as 1: `epochs: true` must not mean 1.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    # Checked before any bound, so `.nan` is called what it is rather than "should be less than 10".
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):
        number = None
    if number is not None and not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return value


# Every number a user writes goes through one of these two types: no booleans, and no inf or nan
# (an infinite learning rate or time budget would pass every bound and break writing result.json).
FiniteFloat = Annotated[float, BeforeValidator(_plain_number), AllowInfNan(False)]
Integer = Annotated[int, BeforeValidator(_plain_number)]
# A switch takes only true or false: a 1 or the string "yes" in YAML is a mistake, not a yes.
Flag = Annotated[bool, StrictType()]

# A hub repository id ("name" or "org/name"), never a filesystem path: from_pretrained and load_dataset would
# read a local folder of that name instead of the hub, so a hub_id such as "../x" must not get that far.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")


def _check_hub_id(value: str) -> str:
    if not HUB_ID.match(value) or ".." in value or "--" in value:
        raise ValueError(f"{value!r} is not a hub repository id ('name' or 'org/name'); for local files use path")
    return value


HubId = Annotated[str, AfterValidator(_check_hub_id)]


def _yaml_word(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _yaml_text(value: Any) -> Any:
    """Refuse, in words, the booleans, numbers and nulls YAML made of unquoted text.

    YAML reads ``no``, ``yes``, ``on``, ``off`` as booleans and ``1`` as a number: ``label_names: [no, yes]`` is a
    list of two booleans, which pydantic would only call "not a valid string". Looks one level into lists and
    mappings (keys and values); a null is refused only inside them (an optional field may be null).
    """
    if isinstance(value, dict):
        items = [x for k, v in value.items() for x in (k, *(v if isinstance(v, list) else [v]))]
    elif isinstance(value, list):
        items = list(value)
    else:
        items = [value] if value is not None else []
    odd = [x for x in items if x is None or isinstance(x, (bool, int, float))]
    if not odd:
        return value
    flags = [x for x in odd if isinstance(x, bool)]
    bools = list(dict.fromkeys(_yaml_word(x) for x in flags))
    numbers = [str(x) for x in odd if isinstance(x, (int, float)) and not isinstance(x, bool)]
    parts = [f"{'/'.join(bools)} as {'booleans' if len(flags) > 1 else 'a boolean'}"] if bools else []
    parts += [f"{', '.join(numbers)} as {'numbers' if len(numbers) > 1 else 'a number'}"] if numbers else []
    parts += ["an empty entry as null"] if any(x is None for x in odd) else []
    problem = f"YAML read {' and '.join(parts)}, not as text"
    if bools:
        problem += " (unquoted yes/no, on/off and true/false are booleans in YAML)"
    if isinstance(value, list) and None not in odd:
        fix = f"quote them: [{', '.join(repr(_yaml_word(x)) for x in value)}]"
    elif None in odd:
        fix = "give every entry a value, in quotes"
    else:
        words = [repr(_yaml_word(x)) for x in odd]
        fix = f"quote {'it' if len(words) == 1 else 'them'}: {', '.join(words)}"
    raise ValueError(f"{problem}; {fix}")


# Text a user writes in YAML: a boolean or number that YAML made of it is refused with the reason, not as a type.
Text = Annotated[str, BeforeValidator(_yaml_text)]
TextList = Annotated[list[str], BeforeValidator(_yaml_text)]
TextMap = Annotated[dict[str, str], BeforeValidator(_yaml_text)]

# Upper limits: far above any real run, low enough that a stray digit or exponent is caught before training.
MAX_ROWS = 10**9
MAX_SEED = 2**31 - 1  # numpy, scikit-learn and torch all accept it, and seed + k for the extra seeds fits too


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not SAFE_NAME.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a safe name; use letters, digits, '.', '_' and '-' (no '..', no '/')"
        )
    return value


def _check_budget_names(value: Any) -> Any:
    """Budget profile names, checked where they are written: each becomes part of a folder name in the store."""
    if not isinstance(value, dict):
        return value
    _yaml_text(list(value))
    for name in value:
        if len(name) > MAX_BUDGET_NAME:
            raise ValueError(
                f"budget name {name[:20]!r}... is {len(name)} characters, more than {MAX_BUDGET_NAME} (it starts "
                "the configuration's folder name in the results store); shorten it"
            )
        if not SAFE_NAME.match(name) or ".." in name:
            raise ValueError(
                f"budget name {name!r} is not a safe name; use letters, digits, '.', '_' and '-' (no '..', no '/')"
            )
    return value


# Budget fields a tuning space may not search: they choose which rows are trained or scored (a searched test
# sample would tune on the test set), seed each run, or change no score.
UNSEARCHABLE_BUDGET_FIELDS = frozenset({"seed", "train_examples", "test_examples", "eval_batch_size", "tuning"})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Distribution(Strict):
    """One searched dimension: ``{low, high, log}`` (floats; integers when both bounds are whole numbers written
    without a point) or ``{choices: [...]}``."""

    low: FiniteFloat | None = None
    high: FiniteFloat | None = None
    log: Flag = False
    choices: list[Any] | None = Field(None, min_length=1)
    integer: bool = Field(False, description="set from the bounds as written (1 and 3, not 1.0): an integer range")

    @model_validator(mode="before")
    @classmethod
    def _integer_from_bounds(cls, value: Any) -> Any:
        if isinstance(value, dict) and "integer" not in value:
            low, high = value.get("low"), value.get("high")
            whole = all(_number(v) and isinstance(v, int) for v in (low, high))
            return {**value, "integer": whole}
        return value

    @model_validator(mode="after")
    def _one_form(self) -> Distribution:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("give either choices or low/high (with log), not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (and log: true for a log scale), or choices")
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low:g}")
        return self

    def bounds(self) -> list[Any]:
        """The values that must each be valid for the searched field: the bounds, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.integer else [self.low, self.high]

    def within(self, outer: Distribution) -> bool:
        """Whether every value of this distribution is one of ``outer``'s (a narrowing)."""
        if self.choices is not None or outer.choices is not None:
            return self.choices is not None and outer.choices is not None and all(c in outer.choices for c in self.choices)
        return outer.low <= self.low and self.high <= outer.high and self.integer == outer.integer


class Tuning(Strict):
    """A tuning budget: the same number of trials for every model, each a run scored on validation only; the
    best trial of each model and seed (by the benchmark's main metric) is the one evaluated on test."""

    trials: Integer = Field(ge=1, le=10_000)
    space: dict[str, Distribution] = Field(
        min_length=1, description="budget field or family parameter -> its distribution"
    )
    # qmc (scrambled Sobol, seeded) and random propose every trial before any has run: the harness asks Optuna for
    # all of a study's trials at once, so `--parallel 2`, Ray, a kill and a rerun give the very same trials. TPE
    # learns from finished trials: its trials are asked a wave (one per slot) at a time, so they depend on how
    # many run at once.
    sampler: Literal["qmc", "random", "tpe"] = "qmc"
    seed: Integer = Field(0, ge=0, le=MAX_SEED, description="the sampler's seed")
    validation_share: FiniteFloat = Field(
        0.1, gt=0, lt=1, description="share of train carved out for validation when the benchmark has no validation split"
    )

    @field_validator("space")
    @classmethod
    def _searchable(cls, value: dict[str, Distribution]) -> dict[str, Distribution]:
        for name, distribution in value.items():
            check_searchable(name, distribution)
        return value


def check_searchable(name: str, distribution: Distribution) -> None:
    """Raise ValueError unless ``name`` is a searchable budget field or a parameter of a family, and every value of
    ``distribution`` is valid for it."""
    owners = _families.param_owners(name) if _families is not None else []
    if name in Budget.model_fields and name not in UNSEARCHABLE_BUDGET_FIELDS:
        checks = [lambda v: Budget.model_validate({name: v})]
    elif owners:
        checks = [lambda v, f=family: _families.check_params(f, {name: v}) for family in owners]
    else:
        if name in UNSEARCHABLE_BUDGET_FIELDS:
            raise ValueError(f"'{name}' cannot be searched (it chooses the rows trained or scored, or the seed)")
        searchable = sorted(set(Budget.model_fields) - UNSEARCHABLE_BUDGET_FIELDS)
        params = _families.all_params() if _families is not None else []
        raise ValueError(f"unknown field '{name}': search budget fields ({', '.join(searchable)}) or family "
                         f"parameters ({', '.join(params)})")
    for bound in distribution.bounds():
        for check in checks:
            try:
                check(bound)
            except ValidationError as exc:
                raise ValueError(f"'{name}': {bound!r}: {exc.errors()[0]['msg']}") from None


class Budget(Strict):
    """The training budget every model on a benchmark shares.

    Only ``learning_rate``, ``weight_decay`` and ``warmup_ratio`` may be overridden per model
    (a 66M- and a 270M-parameter model rarely share a best learning rate); the leaderboard marks overrides.
    """

    train_examples: Integer | None = Field(
        None, ge=1, le=MAX_ROWS, description="subsample train to this many rows (stratified)"
    )
    test_examples: Integer | None = Field(
        None, ge=1, le=MAX_ROWS, description="subsample test to this many rows (stratified)"
    )
    epochs: FiniteFloat = Field(1.0, gt=0, le=1000)
    max_steps: Integer | None = Field(
        None, ge=1, le=MAX_ROWS, description="optimizer steps; overrides epochs when set"
    )
    max_seconds: FiniteFloat | None = Field(
        None, gt=0, le=30 * 24 * 3600, description="wall-clock budget for training (at most 30 days)"
    )
    max_length: Integer = Field(128, ge=8, le=8192)
    batch_size: Integer = Field(16, ge=1, le=65536)
    eval_batch_size: Integer = Field(64, ge=1, le=65536)
    gradient_accumulation_steps: Integer = Field(1, ge=1, le=65536)
    learning_rate: FiniteFloat = Field(5e-5, gt=0, le=10)
    weight_decay: FiniteFloat = Field(0.01, ge=0, le=1)
    warmup_ratio: FiniteFloat = Field(0.06, ge=0, lt=1)
    max_grad_norm: FiniteFloat = Field(1.0, gt=0, le=1e6)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    seed: Integer = Field(42, ge=0, le=MAX_SEED)
    tuning: Tuning | None = Field(None, description="trials per model searched on validation (none: one run each)")

    @model_serializer(mode="wrap")
    def _without_unset_tuning(self, handler):
        # An untuned budget is written as before tuning existed: result.json, configuration.json and the reports of
        # the runs stored then stay byte for byte what they were.
        data = handler(self)
        if isinstance(data, dict) and data.get("tuning") is None:
            data.pop("tuning", None)
        return data


OVERRIDABLE_BUDGET_FIELDS = frozenset({"learning_rate", "weight_decay", "warmup_ratio"})


class ConfigsAsColumn(Strict):
    """A hub dataset split into one config per group (e.g. per language), read as one table with a column."""

    column: Text
    configs: TextMap = Field(min_length=1, description="column value -> hub config name")


class DatasetSource(Strict):
    """Where a benchmark's data comes from when no ``--data-dir`` is given.

    ``hub_id`` may be left out for data that only exists locally: such a benchmark then needs ``--data-dir``.
    """

    hub_id: HubId | None = None
    config: Text | None = None
    configs_as_column: ConfigsAsColumn | None = None
    revision: Text | None = None
    rename: TextMap = Field(default_factory=dict, description="hub column -> benchmark column")

    @model_validator(mode="after")
    def _one_config_form(self) -> DatasetSource:
        if self.config and self.configs_as_column:
            raise ValueError("give either 'config' or 'configs_as_column', not both")
        if not self.hub_id:
            given = [k for k in ("config", "configs_as_column", "revision") if getattr(self, k)]
            if given:
                raise ValueError(f"{given} only apply to a hub dataset: give 'hub_id' too, or remove them")
        return self


# Where a benchmark's metric names are checked: the metric catalogue (``harness.metrics.columns``) lives beside this
# layer, not below it, so ``harness.store.results`` (which reads both) registers its column names here on import.
_metric_names: tuple[str, ...] | None = None


def register_metric_names(names: list[str]) -> None:
    global _metric_names
    _metric_names = tuple(names)


def _local_module(value: str) -> bool:
    """Whether an extra metric's ``module`` is a path (else an evaluate hub id such as ``accuracy``)."""
    return value.startswith((".", "/", "~")) or value.endswith(".py") or "\\" in value


class ExtraMetric(Strict):
    """A metric from an ``evaluate`` module, computed at report time on every run's stored predictions."""

    name: Text = Field(description="its key in the CSV/JSON records; usable as main_metric")
    module: Text = Field(
        description="a local evaluate module (a .py script or its folder; relative to the benchmark YAML) or a hub "
        "id such as 'accuracy' or 'org/metric' (needs the hub)"
    )
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of compute()")
    key: Text | None = Field(None, description="the entry of compute()'s result; default: its only entry, or name")
    label: Text | None = Field(None, description="the column's header; default: name")
    higher_is_better: Flag = True
    digits: Integer = Field(4, ge=0, le=10)

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("module")
    @classmethod
    def _path_or_hub_id(cls, value: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base_dir")
        if _local_module(value) or (base is not None and (Path(base) / value).exists()):
            path = Path(value).expanduser()
            # Relative to the YAML that names it, so a benchmark runs from any working directory.
            return str(path if path.is_absolute() or base is None else (Path(base) / path).resolve())
        return _check_hub_id(value)


class BenchmarkSpec(Strict):
    """One benchmark: its data, columns, labels and the budget every model gets."""

    name: Text
    description: str = ""
    dataset: DatasetSource = Field(default_factory=DatasetSource)
    splits: Annotated[dict[Literal["train", "test", "validation"], str], BeforeValidator(_yaml_text)] = Field(
        default_factory=lambda: {"train": "train", "test": "test"}
    )
    eval_split: Literal["test", "validation"] = "test"
    text_columns: TextList = Field(default_factory=lambda: ["text"], min_length=1)
    text_separator: str = ": "
    label_column: Text = "label"
    label_names: TextList = Field(min_length=2)
    group_columns: TextList = Field(default_factory=list, description="per-group metrics, e.g. lang")
    train_filter: Annotated[dict[str, list[str]], BeforeValidator(_yaml_text)] = Field(
        default_factory=dict, description="keep only train rows whose column is in the list (cross-lingual)"
    )
    empty_text: Literal["drop", "error"] = "drop"
    official_sizes: dict[str, int] = Field(
        default_factory=dict,
        description="rows of each split in the published dataset; the leaderboard says when a run used a sample",
    )
    budgets: Annotated[dict[str, Budget], BeforeValidator(_check_budget_names)]
    default_budget: Text = "quick"
    main_metric: Text = Field(
        "f1_macro",
        description="the score that selects tuning trials and orders the leaderboard and suite ranks: a metric "
        "column's name (accuracy, f1_macro, f1_weighted, roc_auc, mcc, balanced_accuracy, ...) or an extra metric's",
    )
    extra_metrics: list[ExtraMetric] = Field(
        default_factory=list, description="metrics from evaluate modules, computed on the stored predictions"
    )
    dedupe: Literal["keep", "drop_from_train"] = Field(
        "keep", description="train rows whose text also occurs in the evaluation split: keep, or drop_from_train"
    )
    variants: list[Literal["pytorch", "onnx", "onnx-int8"]] = Field(
        default_factory=lambda: ["pytorch", "onnx", "onnx-int8"],
        description="how each transformer is also served and measured: pytorch (the run itself), onnx, onnx-int8",
    )

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("splits")
    @classmethod
    def _split_names_are_file_names(cls, value: dict[str, str]) -> dict[str, str]:
        # With --data-dir a split name is a file name inside that folder: a path in it would read a file elsewhere.
        for key, name in value.items():
            if name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
                raise ValueError(f"split {key}: {name!r} is not a plain name (no '/', not '..')")
        return value

    @field_validator("label_names")
    @classmethod
    def _label_names_are_one_line(cls, value: list[str]) -> list[str]:
        # A class name is a table cell, a CSV field and a line of the model card: a line break would split them.
        broken = [name for name in value if any(unicodedata.category(ch) == "Cc" for ch in name)]
        if broken:
            raise ValueError(f"label name(s) {broken} hold a line break or another control character; remove it")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkSpec:
        if self.default_budget not in self.budgets:
            raise ValueError(
                f"default_budget {self.default_budget!r} is not one of budgets {sorted(self.budgets)}"
            )
        if "train" not in self.splits or self.eval_split not in self.splits:
            raise ValueError(f"splits must name 'train' and the eval_split {self.eval_split!r}")
        if any(not name.strip() for name in self.label_names):
            raise ValueError(f"label_names {self.label_names} has an empty name; give every class a name")
        padded = [name for name in self.label_names if name != name.strip()]
        if padded:
            # Labels in the data are compared with surrounding spaces removed: a padded name could never match.
            raise ValueError(f"label name(s) {padded} start or end with spaces; remove them")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label_names has duplicates")
        self._check_metric_names()
        return self

    def _check_metric_names(self) -> None:
        """``main_metric`` is a catalogue column or a declared extra metric; extra names are new and unique."""
        catalogue = list(_metric_names or ())
        extra = [m.name for m in self.extra_metrics]
        clash = sorted({n for n in extra if n in catalogue or extra.count(n) > 1})
        if clash:
            raise ValueError(f"field 'extra_metrics': {clash} named twice or already a metric column; rename them")
        if _metric_names is not None and self.main_metric not in catalogue + extra:
            match = difflib.get_close_matches(self.main_metric, catalogue + extra, n=1, cutoff=0.6)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            raise ValueError(
                f"field 'main_metric': {self.main_metric!r} is not a metric{hint}; use one of "
                f"{', '.join(catalogue + extra)}, or declare it under extra_metrics"
            )

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


class ModelSource(Strict):
    """Exactly one of: a hub id (with revision), a local directory, or an installed package's folder.

    ``package`` is a top-level import name; the folder is found on ``sys.path`` without importing anything
    (importing would run the package's code), and ``package_subdir`` is a relative path that stays inside it.
    """

    hub_id: HubId | None = None
    revision: Text | None = None
    path: str | None = None
    package: str | None = None
    package_subdir: str = "model"

    @field_validator("package")
    @classmethod
    def _top_level_name(cls, value: str | None) -> str | None:
        if value is not None and not PACKAGE_NAME.match(value):
            head, _, rest = value.partition(".")
            hint = f"; for a folder inside it write package: {head} and give the rest as package_subdir"
            raise ValueError(
                f"{value!r} is not a top-level package name (letters, digits and '_', no dots)" + (hint if rest else "")
            )
        return value

    @field_validator("package_subdir")
    @classmethod
    def _inside_package(cls, value: str) -> str:
        parts = PurePosixPath(value.replace("\\", "/")).parts
        odd = not value.strip() or "\x00" in value or ":" in value
        if odd or value.startswith(("/", "\\", "~")) or ".." in parts:
            raise ValueError(
                f"{value!r} must be a relative folder inside the package (no '..', not absolute)"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [k for k in ("hub_id", "path", "package") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of hub_id, path, package (got {given or 'none'})")
        return self


class FamilyTable(Protocol):
    """What the model families tell this schema about themselves. ``harness.models`` registers its table with
    ``register_families`` when it is imported (this layer may not import it); until then an entry's family and
    parameters are taken as written, and every command imports the models before it reads a registry."""

    def check_family(self, family: str) -> None:
        """Raise ValueError (with a did-you-mean) for a name that is not a family."""

    def check_params(self, family: str, params: dict[str, Any]) -> dict[str, Any]:
        """The family's parameters validated by its own schema, defaults filled in; raise on bad ones."""

    def param_owners(self, name: str) -> list[str]:
        """The families that have a parameter ``name`` (a tuning space may search it)."""

    def all_params(self) -> list[str]:
        """Every family's parameter names, sorted (for the error of a space naming none of them)."""


_families: FamilyTable | None = None


def register_families(table: FamilyTable) -> None:
    global _families
    _families = table


# Before `params:` a TF-IDF entry wrote its parameters under `tfidf:`: still read (as `params`), and run
# fingerprints keep hashing that family's parameters under this key, so the runs stored then stay current.
LEGACY_PARAMS_KEY = "tfidf"


class ModelSpec(Strict):
    """One candidate model in ``models_registry.yaml``."""

    name: Text
    family: Text = Field(description="a model family of harness.models.FAMILIES")
    description: str = ""
    source: ModelSource | None = None
    params: dict[str, Any] | None = Field(None, description="the family's own parameters, checked by its schema")
    tfidf: dict[str, Any] | None = Field(None, description="the tfidf family's parameters, as written before 'params'")
    budget_overrides: dict[str, FiniteFloat] = Field(default_factory=dict)
    trust_remote_code: Flag = False
    multilingual: Flag = False
    tuning_space: dict[str, Distribution] | None = Field(
        None, description="narrows the benchmark's tuning space for this model (each field within its bounds)"
    )

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("budget_overrides")
    @classmethod
    def _only_overridable(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(set(value) - OVERRIDABLE_BUDGET_FIELDS)
        if bad:
            raise ValueError(
                f"{bad} cannot differ between models; only {sorted(OVERRIDABLE_BUDGET_FIELDS)} may be overridden"
            )
        # An override obeys the same bounds as the benchmark's own budget field.
        try:
            Budget.model_validate(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        return value

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if _families is not None:
            _families.check_family(value)
        return value

    @field_validator("params", LEGACY_PARAMS_KEY)
    @classmethod
    def _family_params(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        family = info.data.get("family")  # absent when the family itself was refused
        if value is None or family is None:
            return value
        if info.field_name == LEGACY_PARAMS_KEY and family != LEGACY_PARAMS_KEY:
            raise ValueError(f"'{LEGACY_PARAMS_KEY}' holds the {LEGACY_PARAMS_KEY} family's parameters; "
                             f"give a {family} entry's under 'params'")
        # The error of a bad parameter keeps its path (models.0.params.C), so it reads as one line like any other.
        return _families.check_params(family, value) if _families is not None else value

    @model_validator(mode="after")
    def _one_params_key(self) -> ModelSpec:
        legacy = getattr(self, LEGACY_PARAMS_KEY)
        if legacy is not None:
            if self.params is not None:
                raise ValueError(f"give the parameters once, under 'params' ('{LEGACY_PARAMS_KEY}' is its old name)")
            # Read as `params`: an entry means the same whichever key it used (the model is frozen, hence object's).
            object.__setattr__(self, "params", legacy)
            object.__setattr__(self, LEGACY_PARAMS_KEY, None)
        return self

    def identity(self) -> dict[str, Any]:
        """The entry as a run's fingerprint hashes it: every field but the description, the parameters of the
        family that wrote them under the legacy key hashed there (so its stored runs stay current), any other
        family's under 'params' when it has some (so an entry without any hashes as it always did)."""
        # A narrowed tuning space is part of the entry only where it is given: untuned runs keep their fingerprints.
        unset = {"tuning_space"} if self.tuning_space is None else set()
        entry = self.model_dump(exclude={"description", "params", LEGACY_PARAMS_KEY, *unset})
        legacy = self.family == LEGACY_PARAMS_KEY
        entry[LEGACY_PARAMS_KEY] = self.params if legacy else None
        if self.params is not None and not legacy:
            entry["params"] = self.params
        return entry

    def budget_for(self, budget: Budget) -> Budget:
        """The benchmark budget with this model's allowed overrides applied."""
        return budget.model_copy(update=self.budget_overrides) if self.budget_overrides else budget


class RegistryFile(Strict):
    models: list[ModelSpec] = Field(min_length=1)


def _entry_from_name(value: Any) -> Any:
    # `benchmarks: [sst2, sst5]` is the short form of `- {benchmark: sst2}`.
    return {"benchmark": value} if isinstance(value, str) else value


class SuiteEntry(Strict):
    """One benchmark of a suite and where its data lies."""

    benchmark: str = Field(description="a benchmark name, or a benchmark YAML path relative to the suite file")
    data_dir: str | None = Field(
        None,
        description="its data folder, relative to the data root (or to the suite file without one); default: the "
        "folder named after the benchmark inside the data root, or the hub when there is no data root",
    )

    @field_validator("benchmark", "data_dir")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\x00" in value):
            raise ValueError("must not be empty")
        return value


class SuiteSpec(Strict):
    """A suite (``benchmarks/suites/<name>.yaml``): several benchmarks run by one command and summarised together."""

    name: str
    description: str = ""
    data_root: str | None = Field(
        None, description="folder holding one data folder per benchmark, relative to the suite file; --data-root wins"
    )
    benchmarks: list[Annotated[SuiteEntry, BeforeValidator(_entry_from_name)]] = Field(min_length=1)

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class _SafeUniqueKeyLoader(yaml.SafeLoader):
    """The safe loader (no Python tags, so loading never runs code), refusing a key given twice in one mapping:
    plain YAML keeps the last silently, which turns a pasted-twice ``budgets:`` into a quiet change of budget."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key: the base constructor reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_SafeUniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: Path) -> Any:
    """Load YAML with the safe loader; a syntax error becomes one line naming the file and the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HarnessInputError(str(path), "file not found", "check the path") from None
    except UnicodeDecodeError as exc:
        raise HarnessInputError(str(path), f"not UTF-8 text ({exc.reason})", "save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=_SafeUniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HarnessInputError(where, f"malformed YAML: {problem}", "fix the YAML syntax at that line") from None


def _schema_at(schema: type[BaseModel] | None, loc: list) -> type[BaseModel] | None:
    """The schema class that owns the mapping at ``loc`` (list items and dict values followed), or None."""
    current: Any = schema
    for part in loc:
        current = _unwrap_model(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
            continue
        origin, args = typing.get_origin(current), typing.get_args(current)
        if origin in (list, tuple) and args and isinstance(part, int):
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return None
    current = _unwrap_model(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    # `X | None` and `Annotated[X, ...]` around a schema: the schema is what owns the fields.
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else annotation
    return annotation


def validation_error_line(
    path: Path, exc: ValidationError, entry_of=None, schema: type[BaseModel] | None = None
) -> HarnessInputError:
    """Turn pydantic's multi-line report into one line: file, entry, field, problem, fix.

    Unknown keys come first, all of them, each with a did-you-mean against the field names of the schema that
    owns them (``schema`` is the top-level model, so nested entries are followed): a misspelt ``label_name``
    reads "unknown field 'label_name' (did you mean 'label_names'?)", not "missing required field ...".
    """
    errors = exc.errors()
    # Outer keys first: a misspelt top-level key is read before the ones inside a budget.
    unknown = sorted((e for e in errors if e["type"] == "extra_forbidden"), key=lambda e: len(e["loc"]))
    if unknown:
        parts, suggested = [], set()
        for err in unknown:
            loc = list(err["loc"])
            owner = _schema_at(schema, loc[:-1])
            fields = list(owner.model_fields) if owner else []
            match = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
            parts.append(f"'{loc[-1]}'" + (f" (did you mean '{match[0]}'?)" if match else ""))
            if match:
                suggested.add((*loc[:-1], match[0]))
        # A required field reported missing only because it was misspelt is the same problem, not another one.
        rest = [
            e
            for e in errors
            if e["type"] != "extra_forbidden" and not (e["type"] == "missing" and e["loc"] in suggested)
        ]
        loc = list(unknown[0]["loc"])
        problem = f"unknown field{'s' if len(parts) > 1 else ''} {', '.join(parts)}"
        fix = "remove them or correct their spelling" if len(parts) > 1 else "remove it or correct its spelling"
        more = len(rest)
    else:
        err = errors[0]
        loc = list(err["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "missing":
            problem, fix = f"missing required field '{field}'", f"add '{loc[-1]}'"
        elif not loc:  # a check across fields: its message names them
            problem, fix = err["msg"].removeprefix("Value error, "), "correct those fields"
        else:
            problem = f"field '{field}': {err['msg']}"
            fix = f"give '{loc[-1]}' a valid value"
        more = len(errors) - 1
    entry = entry_of(loc) if entry_of else None
    where = f"{path} [{entry}]" if entry else str(path)
    extra = f" ({more} more problem(s) after this one)" if more else ""
    return HarnessInputError(where, problem + extra, fix)
