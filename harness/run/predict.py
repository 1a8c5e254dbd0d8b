"""The deployable inference path: a saved model directory plus raw texts in, labels with probabilities out."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from harness.core.errors import HarnessInputError


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

    Returns one dict per text: ``label``, ``score`` (its probability) and ``probabilities`` by class name.
    """
    model = _load(str(Path(model_dir).resolve()), variant)
    probs = model.predict_proba(list(texts), batch_size=batch_size)
    names = model.label_names
    out = []
    for row in probs:
        best = int(row.argmax())
        out.append({"label": names[best], "score": float(row[best]), "probabilities": dict(zip(names, map(float, row), strict=False))})
    return out


def read_texts(path: Path) -> list[str]:
    """Non-blank lines of a UTF-8 file (``-``: standard input), one text each."""
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
    return [line for line in text.splitlines() if line.strip()]
