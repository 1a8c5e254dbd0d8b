#!/usr/bin/env python
"""Inference speed of the harness against the model's own arithmetic: is what the leaderboard shows the model?

Measured, for one model in its eval precision (weights cast once, as the harness predicts):
- evaluation end to end: ``predict_proba(texts, batch_size)``, raw texts in, tokenisation included, against a
  bare forward pass over the same texts pre-tokenised, length-sorted, padded and already on the device, at the
  same batch (the ceiling: what the model costs without any of the harness). The ratio is the share of the
  model's speed the harness delivers;
- batch-1 latency over ``--calls`` calls: end to end (``predict_proba([text])``) and model only (pre-tokenised),
  p50/p95/p99 and the p95/p50 and p99/p50 ratios (near 1 on a quiet device); in bf16/fp16 also the model-only
  forward under autocast on the fp32 weights, the way it ran before the weights were cast once;
- optionally (``--bert``) BERT-base with random weights, model-only batch-1, the launch-bound case.

GPU (the speed issue's figures):
    python benchmarks/inference_speed.py --data ../shared/data/amazon_polarity --texts 50000 --calls 1000 --bert
CPU (a smaller check that the same code runs):
    python benchmarks/inference_speed.py --data ../shared/data/amazon_polarity --texts 2048 --calls 200 --precision bf16
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "amazon_polarity",
                        help="a folder with train.csv/test.csv (title+content or text columns)")
    parser.add_argument("--model-dir", type=Path, help="a saved model (default: all-MiniLM-L6-v2, fresh head)")
    parser.add_argument("--texts", type=int, default=50_000, help="texts evaluated (the data repeated if shorter)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--calls", type=int, default=1000, help="timed batch-1 calls per path")
    parser.add_argument("--warmup", type=int, default=20, help="untimed batch-1 calls per path")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="eval precision (auto: bf16 on CUDA with bf16, else fp32)")
    parser.add_argument("--bert", action="store_true", help="also BERT-base random weights, model-only batch 1")
    parser.add_argument("--json-out", type=Path)
    return parser.parse_args(argv)


def read_texts(folder: Path, count: int) -> list[str]:
    import pandas as pd

    frames = [pd.read_csv(folder / name) for name in ("test.csv", "train.csv") if (folder / name).exists()]
    if not frames:
        sys.exit(f"error: {folder} has no test.csv or train.csv; pass --data")
    frame = pd.concat(frames, ignore_index=True)
    if "text" in frame.columns:
        texts = frame.text.fillna("").astype(str).tolist()
    else:
        texts = (frame.title.fillna("").astype(str) + ": " + frame.content.fillna("").astype(str)).tolist()
    return [texts[i % len(texts)] for i in range(count)]


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99))
    return {"calls": len(ms), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "p95_over_p50": p95 / p50,
            "p99_over_p50": p99 / p50}


def time_calls(fn, inputs, warmup: int, device) -> list[float]:
    for x in inputs[:warmup]:
        fn(x)
    sync(device)
    out = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        sync(device)  # the result must exist: a replay or a kernel queue only returns the promise of one
        out.append(time.perf_counter() - start)
    return out


def bare_forward(classifier, texts: list[str], batch_size: int, max_length: int, device) -> float:
    """Samples/s of the forward alone: ids pre-tokenised, length-sorted, padded and on the device beforehand."""
    import torch

    from harness.models.batching import pad_collate, sorted_batches, takes_4d_mask

    model = classifier._inference_model()
    ids = classifier.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    collate = pad_collate(classifier.tokenizer.pad_token_id, max_length, mask_4d=takes_4d_mask(model.config))
    batches = []
    for rows in sorted_batches(lengths, batch_size):
        batch = collate({"input_ids": [ids[i] for i in rows], "idx": rows})
        batch.pop("idx")
        batches.append({k: v.to(device) for k, v in batch.items()})
    with torch.inference_mode():
        model(**batches[0])  # one untimed batch, as the harness gets
        sync(device)
        start = time.perf_counter()
        for batch in batches:
            torch.softmax(model(**batch).logits.float(), dim=-1)
        sync(device)
    return len(texts) / (time.perf_counter() - start)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from harness.metrics.cost import device_info
    from harness.models.precision import pick_precision
    from harness.models.transformer import TransformerClassifier

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.model_dir:
        classifier = TransformerClassifier.load(args.model_dir)
        name = str(args.model_dir)
    else:
        from harness.config.registry import DEFAULT_REGISTRY, load_registry

        classifier = TransformerClassifier.from_spec(load_registry(DEFAULT_REGISTRY)["minilm-l6"], ["neg", "pos"])
        name = "all-MiniLM-L6-v2 (fresh head)"
    classifier.max_length = args.max_length
    classifier.precision = pick_precision(args.precision)
    texts = read_texts(args.data, args.texts)
    print(f"model: {name}; device: {device_info()['device_name']}; precision {classifier.precision}; "
          f"{len(texts):,} texts, batch {args.batch_size}, max_length {args.max_length}", flush=True)

    classifier.predict_proba(texts[: args.batch_size], batch_size=args.batch_size)  # warm-up, as the harness does
    sync(device)
    start = time.perf_counter()
    classifier.predict_proba(texts, batch_size=args.batch_size)
    sync(device)
    end_to_end = len(texts) / (time.perf_counter() - start)
    bare = bare_forward(classifier, texts, args.batch_size, args.max_length, device)
    results = {"model": name, "device": device_info()["device_name"], "precision": classifier.precision,
               "texts": len(texts), "batch_size": args.batch_size,
               "eval_end_to_end_samples_per_s": end_to_end, "eval_bare_forward_samples_per_s": bare,
               "eval_share_of_bare": end_to_end / bare}
    print(f"evaluation: end to end {end_to_end:,.0f} samples/s; bare pre-tokenised forward {bare:,.0f} samples/s; "
          f"share {end_to_end / bare:.0%}", flush=True)

    from harness.run.runner import latency_texts

    sample = latency_texts(texts, min(args.calls, len(set(texts))))
    sample = [sample[i % len(sample)] for i in range(args.calls)]
    e2e = percentiles(time_calls(lambda t: classifier.predict_proba([t]), sample, args.warmup, device))
    forward, encoded = classifier.model_only_callable(sample)
    model_only = percentiles(time_calls(forward, encoded, args.warmup, device))
    results.update(batch1_end_to_end=e2e, batch1_model_only=model_only, batch1_path=classifier.describe()["batch1_path"])
    rows = [("batch-1 end to end", e2e), ("batch-1 model only", model_only)]
    if classifier.precision in ("bf16", "fp16"):
        # The same forward the way it ran before weights were cast once: fp32 weights under autocast.
        dtype = torch.bfloat16 if classifier.precision == "bf16" else torch.float16
        fp32_model = classifier._unwrapped().to(device).eval()

        def autocast_forward(enc):
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
                return fp32_model(**enc).logits

        results["batch1_model_only_autocast"] = percentiles(time_calls(autocast_forward, encoded, args.warmup, device))
        rows.append(("batch-1 model only, autocast", results["batch1_model_only_autocast"]))
    for label, r in rows:
        print(f"{label}: p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
              f"(p95/p50 {r['p95_over_p50']:.2f}, p99/p50 {r['p99_over_p50']:.2f}; {r['calls']} calls)", flush=True)
    print(f"batch-1 path: {results['batch1_path']}", flush=True)

    if args.bert:
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

        torch.manual_seed(0)
        bert = BertForSequenceClassification(BertConfig(num_labels=2)).eval()
        big = TransformerClassifier(bert, classifier.tokenizer if args.model_dir is None else AutoTokenizer.from_pretrained(
            args.model_dir), ["neg", "pos"])
        big.max_length, big.precision = args.max_length, classifier.precision
        forward, encoded = big.model_only_callable(sample)
        r = percentiles(time_calls(forward, encoded, args.warmup, device))
        results["bert_base_batch1_model_only"] = {**r, "batch1_path": big.describe()["batch1_path"]}
        print(f"BERT-base (random weights) batch-1 model only: p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, "
              f"p99 {r['p99_ms']:.2f} ms; path {results['bert_base_batch1_model_only']['batch1_path']}", flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
