#!/usr/bin/env python
"""How busy the GPU is during the harness's training steps, and the MFU they reach (CUDA only).

Trains a base-size encoder with random weights through ``TransformerClassifier.fit`` on review-length texts
from the Amazon sample, once untimed (so the numbers are those of a warm process: the first fit's cost is
what benchmarks/train_speed.py reports), then again under ``torch.profiler`` recording CUDA kernels only.
GPU busy = the union of kernel intervals / the wall time of the steps; launches per step = kernels / steps.

    python benchmarks/gpu_busy.py --model bert --batch-size 32
    python benchmarks/gpu_busy.py --model bert --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness.config.schema import Budget  # noqa: E402
from harness.data.loading import Split  # noqa: E402
from harness.metrics.cost import MFU_CONVENTION, mfu_peak_flops, model_flops_utilization  # noqa: E402
from harness.models.transformer import TransformerClassifier, non_embedding_parameters  # noqa: E402


def busy_fraction(intervals: list[tuple[float, float]], wall_us: float) -> float:
    """Share of ``wall_us`` covered by at least one kernel (overlapping kernels count once)."""
    covered, end = 0.0, -1.0
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        covered += stop - max(start, end)
        end = stop
    return covered / wall_us if wall_us else 0.0


def main() -> int:
    from train_speed import load_model, read_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/amazon_polarity")
    parser.add_argument("--model", default="bert")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_busy: no CUDA device here; this measurement is for a GPU")
        return 0
    texts, labels = read_split(args.data / "train.csv", args.train, 0)
    model, tokenizer = load_model(args.model, True, 2)
    classifier = TransformerClassifier(model, tokenizer, ["negative", "positive"])
    split = Split(name="train", texts=texts, labels=labels, ids=np.arange(len(texts)))
    budget = Budget(epochs=1, max_length=args.max_length, batch_size=args.batch_size, learning_rate=5e-5,
                    warmup_ratio=0.0, precision="auto", seed=0)
    first = classifier.fit(split, budget, Path("/tmp/gpu-busy/first"), show_progress=False)
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        report = classifier.fit(split, budget, Path("/tmp/gpu-busy/second"), show_progress=False)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    intervals = [(e.time_range.start, e.time_range.end) for e in kernels]
    span = (max(e for _, e in intervals) - min(s for s, _ in intervals)) if intervals else 0.0
    busy = busy_fraction(intervals, span)
    steps = report.optimizer_steps
    params = non_embedding_parameters(classifier._unwrapped())
    out = {
        "model": args.model, "batch_size": args.batch_size, "device": torch.cuda.get_device_name(),
        "first_fit_samples_per_s": first.samples_per_second, "second_fit_samples_per_s": report.samples_per_second,
        "first_over_second_time": first.train_seconds / report.train_seconds,
        "gpu_busy_fraction_of_kernel_span": busy, "kernels_per_step": len(kernels) / max(1, steps),
        "ms_per_step_profiled": 1000 * wall / max(1, steps),
        "mfu_first_fit": first.mfu, "mfu_second_fit": report.mfu,
        "mfu_profiled": model_flops_utilization(params, report.real_tokens, wall, mfu_peak_flops()),
        "precision": report.precision["resolved"], "mfu_convention": MFU_CONVENTION,
    }
    print(json.dumps(out, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
