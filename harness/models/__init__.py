"""Model families behind one small interface (see ``base.TextClassifier``).

Adding a new kind of model is one module plus one line in ``FAMILIES``. Families are imported lazily,
so the TF-IDF path never imports torch.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from harness.config.schema import ModelSpec
from harness.models.base import TextClassifier

FAMILIES: dict[str, str] = {
    "tfidf": "harness.models.tfidf:TfidfLogReg",
    "transformer": "harness.models.transformer:TransformerClassifier",
}

FAMILY_FILE = "harness_family.json"


def family_class(family: str) -> type[TextClassifier]:
    module_name, _, class_name = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_model(spec: ModelSpec, label_names: list[str]) -> TextClassifier:
    return family_class(spec.family).from_spec(spec, label_names)


def save_model(model: TextClassifier, directory: Path, family: str) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    (directory / FAMILY_FILE).write_text(json.dumps({"family": family}) + "\n")


def load_model(directory: Path) -> TextClassifier:
    """Load any saved model; a folder without our marker is taken as a Hugging Face model directory."""
    directory = Path(directory)
    marker = directory / FAMILY_FILE
    family = json.loads(marker.read_text()) if marker.exists() else {"family": "transformer"}
    if not isinstance(family, dict) or family.get("family") not in FAMILIES:
        # A ValueError like any other unreadable saved model: the caller reports it as bad input.
        raise ValueError(f"{marker} names no model family (expected {{\"family\": one of {sorted(FAMILIES)}}})")
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
