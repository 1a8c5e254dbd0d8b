"""Command line: parse arguments, build a RunConfig, hand over to the pipeline. Nothing else lives here."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.errors import HarnessInputError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _filters(items: list[str] | None) -> dict[str, list[str]] | None:
    if not items:
        return None
    out: dict[str, list[str]] = {}
    for item in items:
        column, sep, values = item.partition("=")
        if not sep or not column or not values:
            raise HarnessInputError("--train-filter", f"{item!r} is not COLUMN=V1,V2", "write e.g. --train-filter lang=en")
        out.setdefault(column, []).extend(v for v in values.split(",") if v)
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line like every other input error (argparse would print the whole usage first), exit code 2.
        raise HarnessInputError(self.prog, message, f"see '{self.prog} -h'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="run_benchmark.py",
        description="Fine-tune and evaluate every registry model on one benchmark under one identical budget; "
        "write results/<benchmark>/leaderboard.md. Subcommand: 'predict' (see 'run_benchmark.py predict -h').",
    )
    parser.add_argument("--models", default="all", help="'all' or comma-separated registry names (default: all)")
    parser.add_argument("--benchmark", default="amazon_polarity", help="benchmark name in benchmarks/ or a YAML path")
    parser.add_argument("--budget", default=None, help="budget profile of the benchmark (default: its default_budget)")
    parser.add_argument("--data-dir", type=Path, default=None, help="local train/test CSV or Parquet files instead of the hub")
    parser.add_argument("--limit-train", type=_positive_int, default=None, help="stratified fixed-seed train subsample")
    parser.add_argument("--limit-test", type=_positive_int, default=None, help="stratified fixed-seed test subsample")
    parser.add_argument("--train-filter", action="append", metavar="COLUMN=V1,V2",
                        help="train only on rows whose column has these values (e.g. lang=en); evaluate on all; "
                        "stored apart, under results/<benchmark>/transfer/train-<column>-<values>/")
    parser.add_argument("--transfer-matrix", metavar="COLUMN", default=None,
                        help="cross-group transfer in one command: train on all rows, then on each value of this "
                        "group column alone (e.g. lang), evaluating every run on every value")
    parser.add_argument("--seeds", type=_positive_int, default=1, help="train each model with N seeds (mean ± std)")
    parser.add_argument("--results-dir", type=Path, default=Path("results"), help="results store (default: results)")
    parser.add_argument("--registry", type=Path, default=None, help="model registry YAML (default: models_registry.yaml)")
    parser.add_argument("--benchmarks-dir", type=Path, default=None, help="folder of benchmark YAMLs (default: benchmarks/)")
    parser.add_argument("--force", action="store_true", help="redo runs that are already complete")
    parser.add_argument("--report-only", action="store_true", help="rebuild the leaderboard from the store; train nothing")
    parser.add_argument("--list", action="store_true", help="list registry models and benchmarks, then exit")
    parser.add_argument("--no-isolate", action="store_true", help="run models in this process (default: one process each)")
    parser.add_argument("--no-save-model", action="store_true", help="do not keep fine-tuned weights in the store")
    parser.add_argument("--latency-samples", type=_positive_int, default=50, help="timed batch-1 calls per model")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def predict_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="run_benchmark.py predict", description="Classify texts with a saved model (from results/.../model)."
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="a saved model directory")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--file", type=Path, help="a file with one text per line ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def _list(args) -> int:
    from harness.registry import (
        DEFAULT_BENCHMARKS_DIR,
        DEFAULT_REGISTRY,
        list_benchmarks,
        load_benchmark,
        load_registry,
    )

    registry = load_registry(args.registry or DEFAULT_REGISTRY)
    print("models:")
    for spec in registry.values():
        print(f"  {spec.name:<26} {spec.family:<12} {spec.description}")
    print("benchmarks:")
    directory = args.benchmarks_dir or DEFAULT_BENCHMARKS_DIR
    for name in list_benchmarks(directory):
        spec, _ = load_benchmark(name, directory)
        print(f"  {name:<30} {spec.num_labels} classes, budgets {', '.join(spec.budgets)} (default {spec.default_budget})")
    return 0


def _predict(argv: list[str]) -> int:
    args = predict_parser().parse_args(argv)
    from harness.predict import predict_texts, read_texts

    texts = list(args.texts)
    if args.file:
        texts += read_texts(args.file)
    if not texts:
        raise HarnessInputError("predict", "no texts given", "pass texts as arguments or --file FILE")
    import json

    try:
        results = predict_texts(args.model_dir, texts)
    except HarnessInputError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        # A folder that is not a model saved by the harness (or a tampered one) is bad input, not a crash.
        raise HarnessInputError(
            str(args.model_dir),
            f"cannot load a saved model ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
            "pass a folder written by run_benchmark.py (results/<benchmark>/runs/<model>/seed-N/model)",
        ) from None
    for text, result in zip(texts, results, strict=True):
        if args.json:
            print(json.dumps({"text": text, **result}))
        else:
            probs = ", ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items())
            print(f"{result['label']}\t{result['score']:.3f}\t[{probs}]\t{text[:80]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "predict":
            return _predict(argv[1:])
        args = build_parser().parse_args(argv)
        if args.list:
            return _list(args)
        from harness import pipeline, report
        from harness.registry import DEFAULT_BENCHMARKS_DIR, load_benchmark
        from harness.store import ResultsStore

        if args.report_only:
            spec, _ = load_benchmark(args.benchmark, args.benchmarks_dir or DEFAULT_BENCHMARKS_DIR)
            path = report.write_report(ResultsStore(args.results_dir), spec)
            print(f"leaderboard: {path}")
            return 0
        config = pipeline.RunConfig(
            models=args.models,
            benchmark=args.benchmark,
            budget=args.budget,
            seeds=args.seeds,
            data_dir=args.data_dir,
            limit_train=args.limit_train,
            limit_test=args.limit_test,
            train_filter=_filters(args.train_filter),
            transfer_matrix=args.transfer_matrix,
            results_dir=args.results_dir,
            registry_path=args.registry,
            benchmarks_dir=args.benchmarks_dir,
            force=args.force,
            isolate=not args.no_isolate,
            quiet=args.quiet,
            latency_samples=args.latency_samples,
            save_model=not args.no_save_model,
        )
        summary = pipeline.run(config)
    except HarnessInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    if summary.failed:
        print(f"{len(summary.failed)} run(s) failed: {', '.join(summary.failed)} (see the leaderboard)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
