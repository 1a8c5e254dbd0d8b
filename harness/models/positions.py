"""How many tokens a transformer has positions for, read from its ``config.json`` without loading any weights.

A budget's ``max_length`` above a model's learned positions used to fail tens of seconds into training with a
tensor size message that does not name max_length. The command compares them before any data is read (for a
local model, and a hub model whose config is in the local hub cache); the transformer family compares them again
once the model is loaded, for the hub models whose config was not on disk yet. Imports neither torch nor
transformers, so the TF-IDF path stays light.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from harness.config.schema import ModelSpec
from harness.core.errors import HarnessInputError

# Architectures whose learned positions start at padding_idx + 1: RoBERTa's 514 positions hold 512 tokens.
PADDING_OFFSET_TYPES = frozenset(
    {
        "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "mpnet", "data2vec-text",
        "ibert", "luke", "markuplm", "xmod", "roberta-prelayernorm",
    }
)  # fmt: skip


def position_limit(config: dict) -> int | None:
    """The most tokens a text may have for this model config, or None where positions set no hard limit.

    Rotary positions (RoPE) and DeBERTa-v2/v3's relative-only positions take any length; learned absolute
    positions (BERT, DistilBERT, RoBERTa, XLM-R, ELECTRA, ...) stop at ``max_position_embeddings`` (GPT-2:
    ``n_positions``), less RoBERTa-style models' padding offset.
    """
    if not isinstance(config, dict):
        return None
    if config.get("position_biased_input") is False or config.get("position_embedding_type") == "rotary":
        return None
    if any("rope" in str(key) for key in config):
        return None
    limit = config.get("max_position_embeddings", config.get("n_positions"))
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return None
    if config.get("model_type") in PADDING_OFFSET_TYPES:
        pad = config.get("pad_token_id")
        limit -= (pad if isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0 else 1) + 1
    return limit if limit > 0 else None


def config_file(spec: ModelSpec) -> Path | None:
    """The ``config.json`` a transformer entry will load, when it is on disk now (no network, no code run)."""
    source = spec.source
    if spec.family != "transformer" or source is None:
        return None
    if source.path:
        candidate = Path(source.path).expanduser() / "config.json"
    elif source.package:
        # A top-level name's spec is found without importing it (the schema allows no dotted name).
        found = importlib.util.find_spec(source.package)
        if found is None or not found.submodule_search_locations:
            return None
        root = Path(list(found.submodule_search_locations)[0]).resolve()
        folder = (root / source.package_subdir).resolve()
        if not folder.is_relative_to(root):
            return None
        candidate = folder / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(source.hub_id, "config.json", revision=source.revision)
        except Exception:  # noqa: BLE001 - an odd cache is only a config we cannot read up front
            return None
        if not isinstance(cached, str):
            return None
        candidate = Path(cached)
    return candidate if candidate.is_file() else None


def read_limit(spec: ModelSpec) -> tuple[int, Path] | None:
    """The model's position limit and the file it was read from, or None when there is none or no file yet."""
    path = config_file(spec)
    if path is None:
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # loading the model reports a broken config in its own words
    limit = position_limit(config)
    return (limit, path) if limit is not None else None


def check_max_length(models: list[ModelSpec], max_length: int, benchmark_file: Path, benchmark: str,
                     budget_name: str) -> None:
    """Refuse, in one line naming the benchmark file and field, a max_length some model has no positions for."""
    for spec in models:
        found = read_limit(spec)
        if found is None or max_length <= found[0]:
            continue
        limit, path = found
        raise HarnessInputError(
            f"{benchmark_file} [benchmark '{benchmark}']",
            f"field 'budgets.{budget_name}.max_length': {max_length} is more than model '{spec.name}' has positions "
            f"for ({limit}, read from {path})",
            f"lower max_length to {limit} or less, or leave '{spec.name}' out of --models",
        )
