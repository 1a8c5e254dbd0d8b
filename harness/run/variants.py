"""A run's deployment variants: the trained transformer served by ONNX Runtime (fp32, int8), measured beside it.

Called by ``run.runner`` after the PyTorch model is scored and saved. Each variant is evaluated on the same test
texts through the same tokenizer and measured as the PyTorch model is (throughput over the whole test split
after one untimed batch, batch-1 latency end to end and model-only on the same sample, peak RSS); its
predictions are written to ``variants/<name>/predictions.csv`` in the run folder, and McNemar's exact test
compares its errors with its own PyTorch model's. A variant that cannot be made, loaded or run is recorded
as failed (or skipped, where this machine cannot run it) with its reason; the run itself never fails for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.metrics import quality as M
from harness.metrics.cost import measure_latency, stopwatch, track_memory
from harness.metrics.stats import mcnemar
from harness.models import onnx_variants as ov
from harness.store.results import DeploymentVariant, Inference, PairedTest, PhaseMemory

VARIANTS_DIR = "variants"


def variant_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / VARIANTS_DIR / name


def extra_variants(declared: list[str], family: str | None, enabled: bool = True) -> list[str]:
    """The variants beyond PyTorch this run makes: none for a family that is not a transformer, or when off."""
    if not enabled or family != "transformer":
        return []
    return [name for name in ov.VARIANT_FILES if name in declared]


def evaluate_variants(
    model,
    names: list[str],
    model_dir: Path,
    run_dir: Path,
    evaluation,
    pytorch_probs: np.ndarray,
    label_names: list[str],
    latency_sample: list[str],
    latency_warmup: int,
    batch_size: int,
    write_predictions: Callable[..., Path],
    group_columns: list[str],
) -> dict[str, DeploymentVariant]:
    """Make, load and measure each of ``names`` ('onnx', 'onnx-int8') from the model saved in ``model_dir``."""
    results: dict[str, DeploymentVariant] = {}
    if not names:
        return results
    device_type = getattr(model, "_device", lambda: None)()
    device_type = getattr(device_type, "type", "cpu") or "cpu"
    made: dict[str, dict] = {}
    try:
        ov.providers_for(device_type)  # a machine that cannot run them skips both before any export
        export = ov.export_onnx(model, model_dir)
        made["onnx"] = {"export_seconds": export["seconds"], "file": ov.ONNX_FILE}
    except ov.VariantFailed as exc:
        status = "skipped" if isinstance(exc, ov.VariantSkipped) else "failed"
        # The int8 file is made from the fp32 export: without one there is neither.
        return {name: DeploymentVariant(status=status, reason=str(exc)) for name in names}
    if "onnx-int8" in names:
        try:
            quantized = ov.quantize_int8(export["path"])
            made["onnx-int8"] = {"export_seconds": export["seconds"], "quantize_seconds": quantized["seconds"],
                                 "file": ov.INT8_FILE}
        except ov.VariantFailed as exc:
            results["onnx-int8"] = DeploymentVariant(status="failed", reason=str(exc),
                                                     export_seconds=export["seconds"])
    pytorch_labels = pytorch_probs.argmax(axis=1)
    for name in names:
        if name not in made:
            continue
        try:
            results[name] = _measure(
                name, made[name], model, model_dir, run_dir, evaluation, pytorch_probs, pytorch_labels, label_names,
                latency_sample, latency_warmup, batch_size, device_type, write_predictions, group_columns,
            )
        except Exception as exc:  # noqa: BLE001 - a variant that cannot run fails alone
            results[name] = DeploymentVariant(status="failed", reason=f"evaluation failed ({ov._reason(exc)})",
                                              **{k: v for k, v in made[name].items()})
    return {name: results[name] for name in names if name in results}


def _measure(name, made, model, model_dir, run_dir, evaluation, pytorch_probs, pytorch_labels, label_names,
             latency_sample, latency_warmup, batch_size, device_type, write_predictions, group_columns):
    served = ov.OnnxClassifier.load(model_dir, name, device_type, tokenizer=model.tokenizer,
                                    threads=ov.default_threads())
    served.label_names = list(label_names)
    texts = evaluation.texts
    warmup_texts = texts[:batch_size]
    served.predict_proba(warmup_texts, batch_size=batch_size)
    with track_memory("inference") as memory, stopwatch() as clock:
        probs = served.predict_proba(texts, batch_size=batch_size)
    latency = measure_latency(lambda text: served.predict_proba([text], batch_size=1), latency_sample, latency_warmup)
    fn, inputs = served.model_only_callable(latency_sample)
    model_only = measure_latency(fn, inputs, latency_warmup)
    metrics = M.classification_metrics(evaluation.labels, probs, label_names)
    labels = probs.argmax(axis=1)
    test = mcnemar(evaluation.labels, pytorch_labels, labels, exact_below=10**9)
    write_predictions(
        variant_dir(run_dir, name), evaluation.ids, evaluation.labels, probs, label_names,
        {c: v for c, v in evaluation.groups.items() if c in group_columns},
    )
    path = Path(model_dir) / made["file"]
    return DeploymentVariant(
        status="completed",
        runtime=served.describe()["runtime"],
        file=made["file"],
        size_on_disk_bytes=path.stat().st_size,
        export_seconds=made.get("export_seconds"),
        quantize_seconds=made.get("quantize_seconds"),
        accuracy=metrics["accuracy"],
        f1_macro=metrics["f1_macro"],
        agreement_with_pytorch=float(np.mean(labels == pytorch_labels)) if len(labels) else None,
        max_probability_difference=float(np.abs(probs - pytorch_probs).max()) if len(labels) else None,
        paired_test=PairedTest(**test),
        inference=Inference(
            eval_examples=len(texts),
            eval_seconds=clock["seconds"],
            throughput_samples_per_s=len(texts) / clock["seconds"] if clock["seconds"] else 0.0,
            throughput_warmup_examples=len(warmup_texts),
            eval_batch_size=batch_size,
            latency_batch1_end_to_end=latency,
            latency_batch1_model_only=model_only,
        ),
        memory=PhaseMemory(**memory.as_dict()),
    )


def run_variants(job, model, run_dir: Path, model_dir: Path, evaluation, probs: np.ndarray, label_names: list[str],
                 latency_sample: list[str], batch_size: int, write_predictions) -> dict[str, DeploymentVariant]:
    """The job's declared variants, made from its saved model folder (a scratch copy when the job keeps none).

    With ``--no-variants`` or for a family other than transformers: none, and nothing is exported.
    """
    names = extra_variants(job.spec.variants, job.model_spec.family, job.settings.deployment_variants)
    if not names:
        return {}
    if job.settings.save_model:
        return evaluate_variants(model, names, model_dir, run_dir, evaluation, probs, label_names, latency_sample,
                                 job.settings.latency_warmup, batch_size, write_predictions, job.spec.group_columns)
    import shutil
    import tempfile

    from harness.models import save_model

    scratch = Path(tempfile.mkdtemp(prefix="variants-", dir=run_dir))
    try:
        save_model(model, scratch, job.model_spec.family)
        return evaluate_variants(model, names, scratch, run_dir, evaluation, probs, label_names, latency_sample,
                                 job.settings.latency_warmup, batch_size, write_predictions, job.spec.group_columns)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
