#!/usr/bin/env python
"""Host overhead of the training loop: the harness's step against a bare PyTorch loop, on a tiny model.

The model is a two-layer BERT with hidden size 32 (tests/tiny_models.py), so a step's arithmetic is small
and what is left is the work around it: building batches, moving them, the optimizer, scheduler and
clipping calls, bookkeeping. The bare loop runs the same model from the same weights with the same fused
AdamW, linear schedule, gradient clipping and the very same batches, prebuilt as tensors before the clock
starts; it reads nothing back and builds nothing. The harness runs ``TransformerClassifier.fit`` as a
benchmark run calls it.

Per-step cost is the marginal one: (time for S2 steps - time for S1 steps) / (S2 - S1), so one-off set-up
(Accelerate's prepare, the optimizer's creation) is reported apart and does not blur the step. Each recipe
is repeated and the median taken, runs alternating so a busy neighbour slows both alike.

    python benchmarks/host_overhead.py            # prints both per-step times and the ratio
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.config.schema import Budget  # noqa: E402
from harness.data.loading import Split  # noqa: E402
from harness.metrics.cost import device_info  # noqa: E402
from harness.models import batching as B  # noqa: E402
from harness.models import precision as P  # noqa: E402
from harness.models import training as L  # noqa: E402
from harness.models import transformer as T  # noqa: E402
from harness.models.cache import CACHE_ENV  # noqa: E402
from tests.tiny_models import build_tiny_model  # noqa: E402

WORDS = ("good bad great poor fine awful product quality price works broke love hate the a it is was and but "
         "not very really would buy again return never ever after two days weeks months").split()


def texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Review-like texts of 4-40 words, so batches have the usual spread of lengths."""
    rng = np.random.default_rng(seed)
    out = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 40)))) for _ in range(n)]
    return out, rng.integers(0, 2, size=n)


def harness_seconds(model_dir: Path, split: Split, budget: Budget, work: Path) -> tuple[float, float]:
    """(wall seconds of fit(), of which set-up before the first step) for ``budget.max_steps`` steps."""
    classifier = T.TransformerClassifier.load(model_dir)
    start = time.perf_counter()
    report = classifier.fit(split, budget, work, show_progress=False)
    seconds = time.perf_counter() - start
    assert report.optimizer_steps == budget.max_steps
    return seconds, report.tokenize_seconds


def bare_seconds(model_dir: Path, split: Split, budget: Budget) -> float:
    """The same steps as a plain loop over prebuilt tensors: forward, backward, clip, step, schedule, zero."""
    from transformers import get_linear_schedule_with_warmup

    classifier = T.TransformerClassifier.load(model_dir)
    model = classifier.model.train()
    table = classifier.tokenize(split.texts, budget.max_length, split.labels)
    ids = B.TokenIds(table)
    batches = []
    epoch = 0
    mask_4d = B.takes_4d_mask(model.config)
    while len(batches) < budget.max_steps:
        order = B.length_bucketed_batches(ids.lengths, budget.batch_size, seed=budget.seed + epoch)
        for rows in order:
            host = B.build_host_batch(ids, rows, order, 1, 0, classifier.tokenizer.pad_token_id, budget.max_length,
                                      mask_4d)
            batches.append({k: torch.from_numpy(v) for k, v in host.arrays.items()})
        epoch += 1
    batches = batches[: budget.max_steps]
    optimizer = L.make_adamw(model.parameters(), budget.learning_rate, torch.device("cpu"))
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, budget.max_steps)
    start = time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), budget.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="100,400", help="S1,S2: the two run lengths whose difference is timed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for both loops (a tiny model gains nothing from more, and on a shared "
                             "machine idle-spinning threads turn into noise)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    s1, s2 = (int(x) for x in args.steps.split(","))
    work = Path(tempfile.mkdtemp(prefix="host-overhead-"))
    os.environ.setdefault(CACHE_ENV, str(work / "cache"))
    train_texts, labels = texts(4096, seed=0)
    model_dir = build_tiny_model("bert", work / "tiny-bert", train_texts)
    split = Split(name="train", texts=train_texts, labels=labels, ids=np.arange(len(train_texts)))
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the harness honours it; the bare loop runs beside it
    P.configure_threads()
    device = device_info()
    print(f"device: {device['device_name']}; torch threads {torch.get_num_threads()}; tiny BERT (2 layers, hidden 32), "
          f"batch {args.batch_size}, max length {args.max_length}, fp32, fused AdamW; marginal time a step between "
          f"{s1} and {s2} steps, median of {args.repeats}")

    def budget(steps: int) -> Budget:
        return Budget(max_steps=steps, max_length=args.max_length, batch_size=args.batch_size, learning_rate=1e-4,
                      warmup_ratio=0.0, precision="fp32", seed=1)

    harness_split(model_dir, split, budget(8), work)  # tokenise once into the cache; first-call costs paid here
    bare_seconds(model_dir, split, budget(8))
    samples: dict[str, list[float]] = {"harness": [], "bare": [], "harness_setup": []}
    for r in range(args.repeats):
        # alternate which loop goes first, so a neighbour's burst of load does not always land on one of them
        if r % 2 == 0:
            h1, _ = harness_seconds(model_dir, split, budget(s1), work / f"h1-{r}")
            h2, _ = harness_seconds(model_dir, split, budget(s2), work / f"h2-{r}")
            b1 = bare_seconds(model_dir, split, budget(s1))
            b2 = bare_seconds(model_dir, split, budget(s2))
        else:
            b1 = bare_seconds(model_dir, split, budget(s1))
            b2 = bare_seconds(model_dir, split, budget(s2))
            h1, _ = harness_seconds(model_dir, split, budget(s1), work / f"h1-{r}")
            h2, _ = harness_seconds(model_dir, split, budget(s2), work / f"h2-{r}")
        h_step, b_step = (h2 - h1) / (s2 - s1), (b2 - b1) / (s2 - s1)
        samples["harness"].append(h_step)
        samples["bare"].append(b_step)
        samples["harness_setup"].append(h1 - s1 * h_step)
        print(f"  repeat {r + 1}: harness {1000 * h_step:.3f} ms/step, bare loop {1000 * b_step:.3f} ms/step, "
              f"ratio {h_step / b_step:.3f}")
    harness, bare = float(np.median(samples["harness"])), float(np.median(samples["bare"]))
    setup = float(np.median(samples["harness_setup"]))
    ratio = harness / bare
    print(f"harness step {1000 * harness:.3f} ms, bare loop step {1000 * bare:.3f} ms: ratio {ratio:.3f} "
          f"(target <= 1.25); harness set-up outside the steps {1000 * setup:.0f} ms a run")
    if args.json_out:
        args.json_out.write_text(json.dumps({"device": device, "args": vars(args) | {"json_out": str(args.json_out)},
                                             "samples_s": samples, "harness_step_s": harness, "bare_step_s": bare,
                                             "ratio": ratio, "harness_setup_s": setup}, indent=2, default=str) + "\n")
    return 0


def harness_split(model_dir: Path, split: Split, budget: Budget, work: Path) -> None:
    harness_seconds(model_dir, split, budget, work / "warm")


if __name__ == "__main__":
    sys.exit(main())
