"""The deployable inference path: a saved model directory plus raw texts in, labels with probabilities out."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.core.errors import HarnessInputError

# The row of a blank text: not classified, kept so that output row i is input line i.
BLANK = {"label": None, "score": None, "probabilities": {}, "blank": True}


@lru_cache(maxsize=4)
def _load(model_dir: str, variant: str | None = None):
    path = Path(model_dir)
    if not path.is_dir():
        raise HarnessInputError(str(path), "not a directory", "pass a saved model folder such as results/<bench>/configs/<configuration>/runs/<model>/seed-42/model")
    if variant and variant != "pytorch":
        # Served by ONNX Runtime from model.onnx / model-int8.onnx: tokenizer and session, no torch call per text.
        from harness.models import onnx_variants

        try:
            return onnx_variants.OnnxClassifier.load(path, variant, "cpu")
        except onnx_variants.VariantFailed as exc:
            raise HarnessInputError(str(path), f"cannot serve the {variant} variant ({exc})",
                                    "pass a model folder of a run that measured it, or leave out --variant") from None
    from harness.models import load_model

    return load_model(path)


def predict_texts(model_dir: Path | str, texts: list[str], batch_size: int = 32, variant: str | None = None) -> list[dict]:
    """Classify ``texts`` with the model saved in ``model_dir`` (``variant``: 'onnx' or 'onnx-int8' serves
    the run's ONNX Runtime file instead of the PyTorch weights).

    Returns one dict per text, in order: ``label``, ``score`` (its probability) and ``probabilities`` by class
    name. A blank text (empty or whitespace only, e.g. a blank line of ``--file``) is not classified: its dict is
    :data:`BLANK` (label and score None, no probabilities, ``blank`` true), so the rows still match the input lines.
    """
    model = _load(str(Path(model_dir).resolve()), variant)
    texts = list(texts)
    kept = [i for i, text in enumerate(texts) if text.strip()]
    probs = model.predict_proba([texts[i] for i in kept], batch_size=batch_size) if kept else []
    if len(kept) and not np.isfinite(probs).all():
        raise HarnessInputError(str(model_dir), "the saved model gives probabilities that are not finite numbers",
                                "retrain with `run --force` (it rewrites the run's model folder)")
    names = model.label_names
    out = [dict(BLANK) for _ in texts]
    for i, row in zip(kept, probs, strict=True):
        best = int(row.argmax())
        out[i] = {"label": names[best], "score": float(row[best]),
                  "probabilities": dict(zip(names, map(float, row), strict=True))}
    return out


def read_texts(path: Path) -> list[str]:
    """Every line of a UTF-8 file (``-``: standard input), one text each: blank lines too, so that the output
    rows match the input lines (``predict_texts`` marks them blank)."""
    from harness.data.loading import sniff_bytes

    where = "standard input" if str(path) == "-" else str(path)
    try:
        if str(path) != "-":
            data = Path(path).read_bytes()
        else:
            stdin = sys.stdin
            data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
        sniffed = sniff_bytes(data[:4096])
        if sniffed is not None:
            raise HarnessInputError(where, f"is {sniffed[0]}, not UTF-8 text", sniffed[1])
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise HarnessInputError(where, "file not found", "check the path") from None
    except IsADirectoryError:
        raise HarnessInputError(
            where, "is a directory", "pass --file a text file with one text per line"
        ) from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise HarnessInputError(
            f"{where}:{line}",
            f"bytes that are not UTF-8 ({exc.reason})",
            "re-encode the file as UTF-8 (e.g. with iconv)",
        ) from None
    except OSError as exc:
        raise HarnessInputError(
            where, f"cannot read it ({exc.strerror or type(exc).__name__})", "check the file"
        ) from None
    return text.splitlines()
