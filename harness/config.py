"""Typed schemas for everything a user writes: benchmarks, the model registry and run options.

Every schema forbids unknown keys, so a misspelt field fails loudly instead of being ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessInputError

# Names become directory names in the results store: keep them to a safe alphabet so a name in YAML
# can never point outside the results directory.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not SAFE_NAME.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a safe name; use letters, digits, '.', '_' and '-' (no '..', no '/')"
        )
    return value


class Budget(Strict):
    """The training budget every model on a benchmark shares.

    Only ``learning_rate``, ``weight_decay`` and ``warmup_ratio`` may be overridden per model
    (a 66M- and a 270M-parameter model rarely share a best learning rate); the leaderboard marks overrides.
    """

    train_examples: int | None = Field(None, ge=1, description="subsample train to this many rows (stratified)")
    test_examples: int | None = Field(None, ge=1, description="subsample test to this many rows (stratified)")
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs when set")
    max_seconds: float | None = Field(None, gt=0, description="wall-clock budget for training")
    max_length: int = Field(128, ge=8, le=8192)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    seed: int = 42


OVERRIDABLE_BUDGET_FIELDS = frozenset({"learning_rate", "weight_decay", "warmup_ratio"})


class ConfigsAsColumn(Strict):
    """A hub dataset split into one config per group (e.g. per language), read as one table with a column."""

    column: str
    configs: dict[str, str] = Field(min_length=1, description="column value -> hub config name")


class DatasetSource(Strict):
    """Where a benchmark's data comes from when no ``--data-dir`` is given."""

    hub_id: str
    config: str | None = None
    configs_as_column: ConfigsAsColumn | None = None
    revision: str | None = None
    rename: dict[str, str] = Field(default_factory=dict, description="hub column -> benchmark column")

    @model_validator(mode="after")
    def _one_config_form(self) -> DatasetSource:
        if self.config and self.configs_as_column:
            raise ValueError("give either 'config' or 'configs_as_column', not both")
        return self


class BenchmarkSpec(Strict):
    """One benchmark: its data, columns, labels and the budget every model gets."""

    name: str
    description: str = ""
    dataset: DatasetSource
    splits: dict[Literal["train", "test", "validation"], str] = Field(
        default_factory=lambda: {"train": "train", "test": "test"}
    )
    eval_split: Literal["test", "validation"] = "test"
    text_columns: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    text_separator: str = ": "
    label_column: str = "label"
    label_names: list[str] = Field(min_length=2)
    group_columns: list[str] = Field(default_factory=list, description="per-group metrics, e.g. lang")
    train_filter: dict[str, list[str]] = Field(
        default_factory=dict, description="keep only train rows whose column is in the list (cross-lingual)"
    )
    empty_text: Literal["drop", "error"] = "drop"
    official_sizes: dict[str, int] = Field(
        default_factory=dict,
        description="rows of each split in the published dataset; the leaderboard says when a run used a sample",
    )
    budgets: dict[str, Budget]
    default_budget: str = "quick"

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @model_validator(mode="after")
    def _consistent(self) -> BenchmarkSpec:
        if self.default_budget not in self.budgets:
            raise ValueError(
                f"default_budget {self.default_budget!r} is not one of budgets {sorted(self.budgets)}"
            )
        if "train" not in self.splits or self.eval_split not in self.splits:
            raise ValueError(f"splits must name 'train' and the eval_split {self.eval_split!r}")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label_names has duplicates")
        return self

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


class ModelSource(Strict):
    """Exactly one of: a hub id (with revision), a local directory, or an installed package's folder."""

    hub_id: str | None = None
    revision: str | None = None
    path: str | None = None
    package: str | None = None
    package_subdir: str = "model"

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [k for k in ("hub_id", "path", "package") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of hub_id, path, package (got {given or 'none'})")
        return self


class TfidfParams(Strict):
    ngram_max: int = Field(2, ge=1, le=5)
    min_df: int = Field(2, ge=1)
    max_features: int | None = Field(500_000, ge=1)
    sublinear_tf: bool = True
    C: float = Field(4.0, gt=0)
    max_iter: int = Field(1000, ge=1)


class ModelSpec(Strict):
    """One candidate model in ``models_registry.yaml``."""

    name: str
    family: Literal["tfidf", "transformer"]
    description: str = ""
    source: ModelSource | None = None
    tfidf: TfidfParams | None = None
    budget_overrides: dict[str, float] = Field(default_factory=dict)
    trust_remote_code: bool = False
    multilingual: bool = False

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("budget_overrides")
    @classmethod
    def _only_overridable(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(set(value) - OVERRIDABLE_BUDGET_FIELDS)
        if bad:
            raise ValueError(
                f"{bad} cannot differ between models; only {sorted(OVERRIDABLE_BUDGET_FIELDS)} may be overridden"
            )
        return value

    @model_validator(mode="after")
    def _family_fields(self) -> ModelSpec:
        if self.family == "transformer" and self.source is None:
            raise ValueError("a transformer entry needs a 'source' (hub_id, path or package)")
        if self.family == "tfidf" and self.source is not None:
            raise ValueError("a tfidf entry takes 'tfidf' parameters, not a 'source'")
        return self

    def budget_for(self, budget: Budget) -> Budget:
        """The benchmark budget with this model's allowed overrides applied."""
        return budget.model_copy(update=self.budget_overrides) if self.budget_overrides else budget


class RegistryFile(Strict):
    models: list[ModelSpec] = Field(min_length=1)


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


def validation_error_line(path: Path, exc: ValidationError, entry_of=None) -> HarnessInputError:
    """Turn pydantic's multi-line report into one line: file, entry, field, problem, fix."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    entry = entry_of(loc) if entry_of else None
    field = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        problem, fix = f"unknown field '{loc[-1]}'", "remove it or correct its spelling"
    elif kind == "missing":
        problem, fix = f"missing required field '{field}'", f"add '{loc[-1]}'"
    else:
        problem = f"field '{field}': {err['msg']}"
        fix = f"give '{loc[-1] if loc else field}' a valid value"
    where = f"{path} [{entry}]" if entry else str(path)
    extra = f" ({len(exc.errors()) - 1} more problem(s) after this one)" if len(exc.errors()) > 1 else ""
    return HarnessInputError(where, problem + extra, fix)
