"""One flat record per run: every metric and cost figure, for the CSV/JSON exports and ``to_pandas``."""

from __future__ import annotations

from harness.metrics.columns import columns
from harness.store.results import RunResult


def get(obj, *path):
    for key in path:
        if obj is None:
            return None
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj


def result_record(result: RunResult, label_names: list[str]) -> dict:
    """Every metric and cost figure of one run, flat, for the CSV/JSON exports and ``to_pandas``."""
    m, t, i, mem = result.metrics, result.training, result.inference, result.memory
    record = {
        "model": result.model,
        "seed": result.seed,
        "status": result.status,
        "family": result.family,
        "configuration": result.configuration.label,
        "budget_profile": result.configuration.budget_profile,
        "train_rows": get(result, "data", "train_rows"),
        "eval_rows": get(result, "data", "eval_rows"),
        **{column.name: get(m, column.name) for column in columns("export")},
    }
    for name in label_names:
        scores = m.per_class.get(name) if m else None
        for key in ("precision", "recall", "f1"):
            record[f"{key}[{name}]"] = getattr(scores, key, None)
    record.update(
        {
            "train_seconds": get(t, "train_seconds"),
            "train_samples_per_s": get(t, "samples_per_second"),
            "train_tokens_per_s": get(t, "tokens_per_second"),
            "mfu": get(t, "mfu"),
            "latency_p50_ms": get(i, "latency_batch1_end_to_end", "p50_ms"),
            "latency_p90_ms": get(i, "latency_batch1_end_to_end", "p90_ms"),
            "latency_p95_ms": get(i, "latency_batch1_end_to_end", "p95_ms"),
            "latency_p99_ms": get(i, "latency_batch1_end_to_end", "p99_ms"),
            "latency_model_only_p50_ms": get(i, "latency_batch1_model_only", "p50_ms"),
            "eval_samples_per_s": get(i, "throughput_samples_per_s"),
            "peak_rss_train_bytes": get(mem, "train", "rss_peak_bytes"),
            "peak_rss_inference_bytes": get(mem, "inference", "rss_peak_bytes"),
            "cuda_peak_allocated_train_bytes": get(mem, "train", "cuda_peak_allocated_bytes"),
            "cuda_peak_allocated_inference_bytes": get(mem, "inference", "cuda_peak_allocated_bytes"),
            "parameters": get(result, "model_info", "parameters"),
            "size_on_disk_bytes": get(result, "model_info", "size_on_disk_bytes"),
            "truncated_train_share": get(result, "truncation", "train", "share"),
            "truncated_eval_share": get(result, "truncation", "eval", "share"),
            "device": get(result, "device", "device_name"),
            "harness_version": get(result, "environment", "harness_version"),
            "error": f"{result.error.type}: {result.error.message}" if result.error else None,
        }
    )
    # Deployment variants (only where a run measured them: older exports keep their columns).
    for name, v in result.deployment_variants.items():
        record.update({
            f"{name}_status": v.status,
            f"{name}_accuracy": v.accuracy,
            f"{name}_f1_macro": v.f1_macro,
            f"{name}_mcnemar_p": get(v, "paired_test", "p_value"),
            f"{name}_agreement": v.agreement_with_pytorch,
            f"{name}_latency_p50_ms": get(v, "inference", "latency_batch1_end_to_end", "p50_ms"),
            f"{name}_eval_samples_per_s": get(v, "inference", "throughput_samples_per_s"),
            f"{name}_size_bytes": v.size_on_disk_bytes,
        })
    return record
