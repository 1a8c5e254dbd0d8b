"""The deployable inference path: a saved model directory plus raw texts in, labels with probabilities out."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from harness.errors import HarnessInputError


@lru_cache(maxsize=4)
def _load(model_dir: str):
    from harness.models import load_model

    path = Path(model_dir)
    if not path.is_dir():
        raise HarnessInputError(str(path), "not a directory", "pass a saved model folder such as results/<bench>/configs/<configuration>/runs/<model>/seed-42/model")
    return load_model(path)


def predict_texts(model_dir: Path | str, texts: list[str], batch_size: int = 32) -> list[dict]:
    """Classify ``texts`` with the model saved in ``model_dir``.

    Returns one dict per text: ``label``, ``score`` (its probability) and ``probabilities`` by class name.
    """
    model = _load(str(Path(model_dir).resolve()))
    probs = model.predict_proba(list(texts), batch_size=batch_size)
    names = model.label_names
    out = []
    for row in probs:
        best = int(row.argmax())
        out.append({"label": names[best], "score": float(row[best]), "probabilities": dict(zip(names, map(float, row), strict=False))})
    return out


def read_texts(path: Path) -> list[str]:
    if str(path) == "-":
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        return [line.rstrip("\n") for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise HarnessInputError(str(path), "file not found", "check the path") from None
