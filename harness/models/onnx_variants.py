"""Deployment variants of a fine-tuned transformer: the same model exported to ONNX, and that export quantized to int8.

A model chosen for production on a CPU is rarely served as PyTorch eager: it is exported to ONNX Runtime and
often quantized. This module makes those two variants from a trained ``TransformerClassifier`` and serves them:

- ``export_onnx`` writes ``model.onnx`` beside the saved weights with ``torch.onnx.export``'s TorchScript path
  (``dynamo=False``): it traces BERT, DistilBERT, RoBERTa and XLM-R encoders of the installed transformers as
  they run, with dynamic batch and sequence axes. (optimum's exporter needs transformers < 4.58; the dynamo
  exporter needs onnxscript and re-derives the attention-mask code, which is where encoders differ.)
- ``quantize_int8`` writes ``model-int8.onnx`` with ONNX Runtime's dynamic quantization (int8 weights,
  activations quantized per batch as they come): no calibration data, so it cannot leak the test set.
- ``OnnxClassifier`` answers like the PyTorch model does: the same tokenizer (read from the same folder),
  truncation at the same ``max_length``, length-sorted batches padded to their longest text, softmax in numpy.
  Nothing in its prediction path calls torch.

Every failure is a ``VariantFailed`` with a one-line reason, so the caller fails that variant alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from harness.models import saved
from harness.models.positions import position_limit

VARIANTS = ("pytorch", "onnx", "onnx-int8")
ONNX_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
VARIANT_FILES = {"onnx": ONNX_FILE, "onnx-int8": INT8_FILE}
INFERENCE_FILE = saved.INFERENCE_FILE  # the same file TransformerClassifier.save writes
OPSET = 17


class VariantFailed(Exception):
    """A variant that could not be made or run; ``str(exc)`` is the reason, one line."""


class VariantSkipped(VariantFailed):
    """A variant this machine cannot run (ONNX Runtime missing, no CUDA provider): skipped, not failed."""


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def runtime_missing() -> str | None:
    """Why ONNX variants cannot be made here (a package missing), or None when onnx and onnxruntime import."""
    missing = [name for name in ("onnx", "onnxruntime") if _find(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install -e '.[onnx]')"
    return None


def _find(name: str):
    import importlib.util

    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def providers_for(device_type: str) -> list[str]:
    """ONNX Runtime's execution providers for a run on ``device_type`` ('cpu' or 'cuda').

    On CUDA the variant runs on the GPU like its PyTorch model or not at all: measuring it on the CPU beside a
    GPU model would compare two machines. Raises ``VariantSkipped`` when the CUDA provider is not installed.
    """
    missing = runtime_missing()
    if missing:
        raise VariantSkipped(missing)
    import onnxruntime as ort

    if device_type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VariantSkipped(
                "the PyTorch model ran on CUDA and this onnxruntime has no CUDAExecutionProvider "
                "(pip install onnxruntime-gpu to measure the variant there)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def runtime_description(providers: list[str]) -> str:
    import onnxruntime as ort

    return f"onnxruntime {ort.__version__} {providers[0]}"


# ----- making the variants -------------------------------------------------------------------------------------


def export_onnx(classifier, directory: Path) -> dict:
    """Export ``classifier`` (a trained ``TransformerClassifier``) to ``directory/model.onnx`` in fp32.

    Returns ``{"path", "seconds", "bytes"}``. The trace is taken on a padded batch of two texts, so the
    attention-mask path every padded batch takes is the one recorded; batch and sequence length stay dynamic.
    """
    missing = runtime_missing()
    if missing:
        raise VariantSkipped(missing)
    import copy
    import warnings

    import torch

    path = Path(directory) / ONNX_FILE
    start = time.perf_counter()
    try:
        model = classifier._unwrapped()
        first = next(model.parameters())
        if first.device.type != "cpu" or first.dtype != torch.float32:
            model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
        model.eval()

        class Logits(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                # The class's forward, not the instance's: a model trained under Accelerate's bf16/fp16 mixed
                # precision keeps fp32 weights but has an autocast wrapper patched onto its instance forward,
                # and a trace under that autocast fails ("ScalarType ComplexDouble is an unexpected tensor
                # scalar type"). The export is the fp32 graph either way.
                inner = self.inner
                return type(inner).forward(inner, input_ids=input_ids, attention_mask=attention_mask).logits

        enc = classifier.tokenizer(
            ["an example text of a few words for the trace", "short"], padding=True, return_tensors="pt"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python branches the trace fixes
            torch.onnx.export(
                Logits(model),
                (enc["input_ids"], enc["attention_mask"]),
                str(path),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                              "attention_mask": {0: "batch", 1: "sequence"},
                              "logits": {0: "batch"}},
            )
        import onnx

        onnx.checker.check_model(str(path))
    except VariantFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure fails this variant alone
        path.unlink(missing_ok=True)
        raise VariantFailed(f"ONNX export failed ({_reason(exc)})") from None
    return {"path": path, "seconds": time.perf_counter() - start, "bytes": path.stat().st_size}


def quantize_int8(onnx_path: Path, directory: Path | None = None) -> dict:
    """ONNX Runtime dynamic quantization of ``onnx_path`` to ``model-int8.onnx`` beside it (int8 weights)."""
    missing = runtime_missing()
    if missing:
        raise VariantSkipped(missing)
    onnx_path = Path(onnx_path)
    path = Path(directory or onnx_path.parent) / INT8_FILE
    start = time.perf_counter()
    try:
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs a line per skipped node
        try:
            quantize_dynamic(str(onnx_path), str(path), weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(quiet)
    except Exception as exc:  # noqa: BLE001 - a quantizer failure fails the int8 variant alone
        path.unlink(missing_ok=True)
        raise VariantFailed(f"int8 quantization failed ({_reason(exc)})") from None
    return {"path": path, "seconds": time.perf_counter() - start, "bytes": path.stat().st_size}


# ----- serving ---------------------------------------------------------------------------------------------------


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=1, keepdims=True)


def default_threads() -> int | None:
    """The intra-op threads the PyTorch model used in this process (so both run on the same cores), else None."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


class OnnxClassifier:
    """A saved model folder's ONNX file served by ONNX Runtime, with the folder's tokenizer and max length."""

    def __init__(self, session, tokenizer, label_names: list[str], max_length: int, variant: str, providers: list[str]):
        self.session = session
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length
        self.variant = variant
        self.providers = providers
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, directory: Path, variant: str, device_type: str = "cpu", tokenizer=None,
             threads: int | None = None) -> OnnxClassifier:
        """The ``variant`` ('onnx' or 'onnx-int8') of the model saved in ``directory``.

        ``tokenizer``: the run's own tokenizer object (it is the one saved in the folder); read from the folder
        when not given. Raises ``VariantFailed`` (``VariantSkipped`` when the runtime is missing).
        """
        if variant not in VARIANT_FILES:
            raise VariantFailed(f"unknown variant {variant!r}; choose from {sorted(VARIANT_FILES)}")
        providers = providers_for(device_type)
        directory = Path(directory)
        path = directory / VARIANT_FILES[variant]
        if not path.is_file():
            raise VariantFailed(f"{path} does not exist (the run did not make the {variant} variant)")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - a file ONNX Runtime refuses fails this variant alone
            raise VariantFailed(f"ONNX Runtime cannot load {path.name} ({_reason(exc)})") from None
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(directory))
        config = json.loads((directory / "config.json").read_text()) if (directory / "config.json").exists() else {}
        id2label = config.get("id2label") or {}
        labels = [id2label[str(i)] for i in range(len(id2label))] if id2label else [
            f"LABEL_{i}" for i in range(int(config.get("num_labels", 2)))]
        settings = saved.read_inference(directory, position_limit(config))
        max_length = settings.max_length or min(getattr(tokenizer, "model_max_length", 512) or 512, 512)
        return cls(session, tokenizer, labels, int(max_length), variant, providers)

    def _feed(self, ids: list[list[int]]) -> dict[str, np.ndarray]:
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    def _ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length, verbose=False)["input_ids"]

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities for raw texts: tokenised, length-sorted into batches, run, put back in order."""
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float64)
        if not texts:
            return out
        ids = self._ids(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), max(1, batch_size)):
            rows = order[start : start + batch_size]
            logits = self.session.run(["logits"], self._feed([ids[i] for i in rows]))[0]
            out[rows] = _softmax(logits)
        return out

    def model_only_callable(self, texts: list[str]):
        """Pre-tokenised batch-1 inputs and the session call, for latency without tokenisation."""
        feeds = [self._feed(self._ids([text])) for text in texts]
        run = self.session.run

        def forward(feed):
            return run(["logits"], feed)

        return forward, feeds

    def describe(self) -> dict:
        return {"variant": self.variant, "runtime": runtime_description(self.providers),
                "threads": self.session.get_session_options().intra_op_num_threads or os.cpu_count()}
