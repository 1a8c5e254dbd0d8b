"""What a saved model folder must hold, checked when it is loaded: one line naming the file and the fix.

A run writes its model folder whole (``harness_family.json`` beside the family's own files); a folder that is
empty, truncated by a full disk, copied in part or edited by hand is refused here in one line naming the file,
never with a traceback or a prediction of "nan". ``harness_inference.json`` (a transformer's inference settings,
read by the PyTorch and the ONNX Runtime paths) is validated by :class:`SavedInference`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.core.errors import HarnessInputError

INFERENCE_FILE = "harness_inference.json"
RETRAIN = "retrain with `run --force` (it rewrites the run's model folder), or copy the folder again whole"


class SavedInference(BaseModel):
    """``harness_inference.json``: how a saved transformer predicts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_length: int | None = Field(None, ge=1, le=1_000_000, description="tokens kept of each text")
    precision: Literal["fp32", "bf16", "fp16"] | None = Field(None, description="the precision it was trained in")


def bad_file(path: Path, problem: str, fix: str = RETRAIN) -> HarnessInputError:
    """The one-line error of a saved model's file that cannot be used."""
    return HarnessInputError(str(path), problem, fix)


def reason(exc: BaseException) -> str:
    """An exception as the short text of a one-line error (its type and first words)."""
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_folder(directory: Path, family_file: str) -> None:
    """A folder that holds no saved model at all: empty, or neither the harness's marker nor a Hugging Face
    ``config.json`` (a folder without the marker is read as a Hugging Face model directory)."""
    directory = Path(directory)
    fix = "pass a run's model folder (results/<benchmark>/configs/<configuration>/runs/<model>/seed-N/model)"
    if not any(directory.iterdir()):
        raise HarnessInputError(str(directory), "the folder is empty: no saved model here", fix)
    if not (directory / family_file).is_file() and not (directory / "config.json").is_file():
        raise HarnessInputError(
            str(directory / family_file),
            "missing, and no config.json of a Hugging Face model either: not a saved model folder",
            fix + ", or " + RETRAIN,
        )


def read_text_file(path: Path) -> str:
    """A saved model's text file; one line naming it when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise bad_file(path, "missing from the saved model folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_file(path, f"cannot be read ({reason(exc)})") from None


def read_json_file(path: Path):
    """A saved model's JSON file, parsed; one line naming it when it is missing, unreadable or not JSON."""
    text = read_text_file(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise bad_file(path, f"is not JSON ({reason(exc)})") from None


def first_error(path: Path, exc: ValidationError) -> HarnessInputError:
    """A pydantic error of a saved model's file as one line naming the file and the field."""
    err = exc.errors()[0]
    field = ".".join(map(str, err["loc"])) or "(top level)"
    return bad_file(path, f"field '{field}': {err['msg']}")


def read_inference(directory: Path, position_limit: int | None = None) -> SavedInference:
    """``harness_inference.json`` validated (the defaults when the folder has none, as a Hugging Face folder);
    a ``max_length`` beyond the model's positions (``position_limit``) is refused too."""
    path = Path(directory) / INFERENCE_FILE
    if not path.exists():
        return SavedInference()
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise bad_file(path, f"holds a JSON {type(data).__name__}, not an object of settings")
    try:
        settings = SavedInference.model_validate(data)
    except ValidationError as exc:
        raise first_error(path, exc) from None
    if position_limit is not None and settings.max_length is not None and settings.max_length > position_limit:
        raise bad_file(path, f"field 'max_length': {settings.max_length} is more than the model's "
                             f"{position_limit} positions")
    return settings
