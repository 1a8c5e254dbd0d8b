#!/usr/bin/env python
"""Does torch.compile pay for itself in a training run? Compile time against the per-step gain, per padded width.

The harness pads each batch to a multiple of 16, so a run meets up to max_length / 16 shapes (8 at 128), and a
compiled step (one graph per shape, ``dynamic=False``) pays its compilation once per shape. For each width this
measures the eager training step (forward, backward, optimizer), the first compiled step (compilation included)
and the compiled step after, and prints the steps a run must take before compiling is worth it:
``compile seconds / (eager - compiled step seconds)`` per width, and for all widths together.

    python benchmarks/compile_payoff.py                                # all-MiniLM-L6-v2, CPU or GPU
    python benchmarks/compile_payoff.py --random-weights --model bert --batch-size 32 --widths 64,128
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm-l6", help="minilm-l6 (packaged weights) or bert (random, base size)")
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--widths", default="64,128", help="padded widths to measure (comma list)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per width and mode")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def build(args):
    import torch

    if args.model == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(0)
        return BertForSequenceClassification(BertConfig(num_labels=2))
    from harness.config.registry import DEFAULT_REGISTRY, load_registry
    from harness.models.transformer import TransformerClassifier

    return TransformerClassifier.from_spec(load_registry(DEFAULT_REGISTRY)[args.model], ["a", "b"]).model


def step_times(model, batch, steps: int, dtype, device) -> list[float]:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda" or None)
    times = []
    for _ in range(steps + 1):  # the first (one-off set-up, or compilation) is returned first
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from harness.metrics.cost import device_info
    from harness.models.precision import configure_threads

    configure_threads()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    base = build(args).to(device).train()
    vocab = base.config.vocab_size
    print(f"{args.model} on {device_info()['device_name']}, batch {args.batch_size}, {args.precision}, "
          f"torch {torch.__version__}", flush=True)
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        generator = torch.Generator().manual_seed(width)
        batch = {"input_ids": torch.randint(5, vocab, (args.batch_size, width), generator=generator).to(device),
                 "attention_mask": torch.ones(args.batch_size, width, dtype=torch.long, device=device),
                 "labels": torch.zeros(args.batch_size, dtype=torch.long, device=device)}
        eager = step_times(copy.deepcopy(base), batch, args.steps, dtype, device)
        compiled = step_times(torch.compile(copy.deepcopy(base), dynamic=False), batch, args.steps, dtype, device)
        eager_s, compiled_s = float(np.median(eager[1:])), float(np.median(compiled[1:]))
        compile_s = compiled[0] - compiled_s
        gain = eager_s - compiled_s
        row = {"width": width, "eager_step_s": eager_s, "compiled_step_s": compiled_s, "compile_s": compile_s,
               "speedup": eager_s / compiled_s, "break_even_steps": compile_s / gain if gain > 0 else None}
        rows.append(row)
        pays = f"pays after {row['break_even_steps']:,.0f} steps at this width" if gain > 0 else "never pays"
        print(f"width {width}: eager {eager_s * 1000:.1f} ms a step, compiled {compiled_s * 1000:.1f} ms "
              f"({row['speedup']:.2f}x), compiling took {compile_s:.1f} s: {pays}", flush=True)
    total_compile = sum(r["compile_s"] for r in rows)
    mean_gain = float(np.mean([r["eager_step_s"] - r["compiled_step_s"] for r in rows]))
    summary = {"model": args.model, "device": device_info()["device_name"], "batch_size": args.batch_size,
               "precision": args.precision, "widths": rows, "compile_s_all_widths": total_compile,
               "break_even_steps_all_widths": total_compile / mean_gain if mean_gain > 0 else None}
    verdict = (f"{summary['break_even_steps_all_widths']:,.0f} steps" if mean_gain > 0 else "never")
    print(f"all {len(rows)} widths: {total_compile:.0f} s of compilation; a run spread over them breaks even after "
          f"{verdict}", flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
