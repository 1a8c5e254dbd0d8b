"""Model families behind one small interface (see ``base.TextClassifier``).

Adding a new kind of model is one module plus one line in ``FAMILIES``: the family's class declares what the
rest of the harness asks of it (its parameters' schema, the budget fields it reads, whether it loads weights
from a ``source``, its settings for the leaderboard and its model card text). Families are imported lazily,
so the TF-IDF path never imports torch.

Importing this package registers the family table with the registry schema (``config.schema`` may not import
it): from then on an entry's ``family`` is checked against ``FAMILIES`` and its ``params`` by the family's
schema when the registry is read. Whether an entry's ``source`` suits its family is checked by
``check_entries`` when the entry is chosen to run, since that needs the family's module (torch for a
transformer).
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

from harness.config.schema import ModelSpec, register_families
from harness.core.errors import HarnessInputError
from harness.models import saved
from harness.models.base import TextClassifier


class Family(NamedTuple):
    """Where a family's classifier lives, and what is known of it without importing it: the parameter schema
    (a tuning space naming a TF-IDF parameter is checked without importing torch) and whether it is a chance
    baseline (the leaderboard measures the others against it). tests/test_tuning.py keeps ``params`` equal to
    the class's own ``params_schema``."""

    classifier: str  # "module:Class"
    params: str | None = None  # "module:Class" of its parameter schema; None: it takes none
    chance: bool = False


FAMILIES: dict[str, Family] = {
    "tfidf": Family("harness.models.tfidf:TfidfLogReg", params="harness.models.tfidf:TfidfParams"),
    "transformer": Family("harness.models.transformer:TransformerClassifier"),
    "majority": Family("harness.models.majority:MajorityClassifier", params="harness.models.majority:MajorityParams", chance=True),
}

# The families whose rows are chance baselines, for the leaderboard's notes.
CHANCE_FAMILIES = frozenset(name for name, family in FAMILIES.items() if family.chance)

FAMILY_FILE = "harness_family.json"


def params_schema(family: str):
    """The family's parameter schema class (None: it takes none), imported without the family's own module."""
    where = FAMILIES[family].params
    if where is None:
        return None
    module_name, _, class_name = where.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def family_class(family: str) -> type[TextClassifier]:
    module_name, _, class_name = FAMILIES[family].classifier.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class _FamilyTable:
    """``FAMILIES`` as the registry schema sees it (``config.schema.FamilyTable``)."""

    def check_family(self, family: str) -> None:
        if family not in FAMILIES:
            match = difflib.get_close_matches(family, list(FAMILIES), n=1, cutoff=0.6)
            hint = f"did you mean '{match[0]}'?" if match else f"choose from: {', '.join(FAMILIES)}"
            raise ValueError(f"unknown family '{family}' ({hint})")

    def check_params(self, family: str, params: dict[str, Any]) -> dict[str, Any]:
        schema = family_class(family).params_schema
        if schema is None:
            raise ValueError(f"the {family} family takes no 'params'; remove them")
        return schema.model_validate(params).model_dump()

    def param_owners(self, name: str) -> list[str]:
        return [family for family in FAMILIES if name in getattr(params_schema(family), "model_fields", {})]

    def all_params(self) -> list[str]:
        return sorted({name for family in FAMILIES for name in getattr(params_schema(family), "model_fields", {})})


register_families(_FamilyTable())


def check_entries(models: list[ModelSpec], registry_path: Path | None = None) -> None:
    """Refuse, in one line naming the registry file and entry, an entry whose ``source`` does not suit its family:
    a family that loads weights needs one, a family that trains from nothing takes none."""
    for spec in models:
        takes_source = family_class(spec.family).takes_source
        if takes_source == (spec.source is not None):
            continue
        where = f"{registry_path} [model '{spec.name}']" if registry_path else f"model '{spec.name}'"
        if takes_source:
            raise HarnessInputError(where, f"a {spec.family} entry needs a 'source' (hub_id, path or package)",
                                    "add source: {hub_id: ...}, {path: ...} or {package: ...}")
        raise HarnessInputError(where, f"a {spec.family} entry takes no 'source' (it trains from the data alone)",
                                "remove 'source'")


def build_model(spec: ModelSpec, label_names: list[str]) -> TextClassifier:
    return family_class(spec.family).from_spec(spec, label_names)


def save_model(model: TextClassifier, directory: Path, family: str) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    (directory / FAMILY_FILE).write_text(json.dumps({"family": family}) + "\n")


def load_model(directory: Path) -> TextClassifier:
    """Load any saved model; a folder without our marker is taken as a Hugging Face model directory.

    A folder that holds no model, or a file of it that is missing, truncated or not finite, is a
    ``HarnessInputError`` naming the file and the fix (``models.saved``), never a traceback.
    """
    directory = Path(directory)
    saved.check_folder(directory, FAMILY_FILE)
    marker = directory / FAMILY_FILE
    family = saved.read_json_file(marker) if marker.exists() else {"family": "transformer"}
    if not isinstance(family, dict) or family.get("family") not in FAMILIES:
        raise saved.bad_file(marker, f"names no model family (expected {{\"family\": one of {sorted(FAMILIES)}}})")
    return family_class(family["family"]).load(directory)


def quiet_libraries() -> None:
    """Turn off the progress bars the libraries draw on their own: loading and writing weights (transformers),
    downloads (huggingface_hub), dataset map and shard writing (datasets).

    Imports nothing: the environment switches cover libraries imported later (the TF-IDF path never imports
    them), and a library already imported is told directly.
    """
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    switches = {
        "huggingface_hub.utils": "disable_progress_bars",
        "transformers.utils.logging": "disable_progress_bar",
        "datasets": "disable_progress_bars",
    }
    for module, switch in switches.items():
        if module in sys.modules:
            getattr(sys.modules[module], switch)()
