"""Command line: parse arguments, hand over to the library. Nothing else lives here.

``textclf-bench`` (and ``python run_benchmark.py``) has four subcommands, each with its own ``--help``:
``run`` (the default when none is named, so ``python run_benchmark.py --models all`` works), ``report``,
``list`` and ``predict``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from harness.core.errors import HarnessInputError
from harness.core.output import StderrHandler, say, stdout_closed
from harness.core.version import __version__

PROG = "textclf-bench"
SUBCOMMANDS = ("run", "report", "list", "predict")
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
log = logging.getLogger("harness")
# The results folder when --results-dir is not given.
RESULTS_ENV = "TEXTCLF_RESULTS_DIR"


def _results_dir_default() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or "results")


_RESULTS_HELP = f"results store (default: ${RESULTS_ENV}, else results)"


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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", type=Path, default=None,
                        help="model registry YAML (default: ./models_registry.yaml, else the one shipped)")
    parser.add_argument("--benchmarks-dir", type=Path, default=None,
                        help="folder of benchmark YAMLs (default: ./benchmarks, then the ones shipped)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A comparative benchmark for text classifiers: fine-tune and evaluate registry models under "
        "one identical budget and write results/<benchmark>/leaderboard.md. Without a subcommand, 'run' is meant.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="{run,report,list,predict}")

    run = sub.add_parser("run", help="train and evaluate models on a benchmark, then write its leaderboard",
                         description="Train and evaluate models on a benchmark under its shared budget; skip runs "
                         "already in the store; write the leaderboard of this configuration.")
    run.add_argument("--models", default="all", help="'all' or comma-separated registry names (default: all)")
    run.add_argument("--benchmark", default=None,
                     help="benchmark name or a YAML path (default: amazon_polarity; with the hub out of reach and "
                     "no --data-dir, the sample that ships with the harness); a comma list (sst5,ag_news) runs them "
                     "all as a suite and writes results/suites/<a+b>/summary.md")
    run.add_argument("--budget", default=None, help="budget profile of the benchmark (default: its default_budget)")
    run.add_argument("--data-dir", type=Path, default=None, help="local train/test CSV or Parquet files instead of the hub")
    # Suites: several benchmarks in one command (harness/suite.py).
    run.add_argument("--suite", default=None, metavar="NAME|PATH",
                     help="run a suite YAML (benchmarks/suites/NAME.yaml or a path) and write "
                     "results/suites/<suite>/summary.md across its benchmarks")
    run.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                     help="with a suite or a comma list: a folder holding one data folder per benchmark, "
                     "DIR/<benchmark> unless the suite YAML names another (--data-dir names one benchmark's files)")
    run.add_argument("--limit-train", type=_positive_int, default=None, help="stratified train subsample (drawn per seed)")
    run.add_argument("--limit-test", type=_positive_int, default=None, help="stratified fixed-seed test subsample")
    run.add_argument("--fixed-train-sample", action="store_true",
                     help="with a train limit, every seed trains on the same rows (default: each seed draws its own)")
    run.add_argument("--train-filter", action="append", metavar="COLUMN=V1,V2",
                     help="train only on rows whose column has these values (e.g. lang=en); evaluate on all")
    run.add_argument("--transfer-matrix", metavar="COLUMN", default=None,
                     help="cross-group transfer in one command: train on all rows, then on each value of this "
                     "group column alone (e.g. lang), evaluating every run on every value")
    run.add_argument("--seeds", type=_positive_int, default=1, help="train each model with N seeds (mean ± std)")
    run.add_argument("--results-dir", type=Path, default=_results_dir_default(), help=_RESULTS_HELP)
    run.add_argument("--force", action="store_true", help="redo runs that are already complete")
    run.add_argument("--report-only", action="store_true", help="same as the 'report' subcommand")
    run.add_argument("--configuration", default=None, help="with --report-only: the configuration label to report")
    run.add_argument("--list", action="store_true", help="same as the 'list' subcommand")
    run.add_argument("--no-isolate", action="store_true", help="run models in this process (default: one process each)")
    run.add_argument("--no-save-model", action="store_true", help="do not keep fine-tuned weights in the store")
    run.add_argument("--latency-samples", type=_positive_int, default=50, help="timed batch-1 calls per model")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where the grid's runs execute: here (default) or as Ray tasks (pip install '.[ray]')")
    run.add_argument("--parallel", type=_positive_int, default=None,
                     help="runs at once: processes on this machine, or the CPUs of a local Ray instance")
    run.add_argument("--devices", default=None, metavar="0,1,2,3",
                     help="one run per GPU at once on this machine (CUDA_VISIBLE_DEVICES set per run)")
    run.add_argument("--ray-address", default=None,
                     help="a running Ray cluster (default: RAY_ADDRESS, else a local instance for this command)")
    run.add_argument("--log-with", choices=[*TRACKERS, "all"], default=None,
                     help="send training metrics to an experiment tracker through Accelerate (must be installed)")
    run.add_argument("--quiet", action="store_true", help="warnings and errors only")
    run.add_argument("-v", "--verbose", action="store_true", help="debug lines as well")
    run.add_argument("--yes", "-y", action="store_true",
                     help="do not ask before training when the forecast is above 30 minutes (asked only on a terminal)")
    _common(run)

    report = sub.add_parser("report", help="rebuild a leaderboard from the store; train nothing",
                            description="Rebuild a benchmark's leaderboard from the results store and list its "
                            "configurations. Default: the configuration the last run used.")
    report.add_argument("--benchmark", default=None,
                        help="benchmark name or a YAML path (default: the store's benchmark, when it holds one)")
    report.add_argument("--configuration", default=None, help="configuration label (or a unique prefix) to report")
    report.add_argument("--results-dir", type=Path, default=_results_dir_default(), help=_RESULTS_HELP)
    report.add_argument("--quiet", action="store_true", help="warnings and errors only")
    report.add_argument("-v", "--verbose", action="store_true", help="debug lines as well")
    _common(report)

    listing = sub.add_parser("list", help="list registry models and benchmarks",
                             description="List the registry's models and the benchmarks with their budgets.")
    _common(listing)

    predict = sub.add_parser("predict", help="classify texts with a saved model",
                             description="Classify texts with a saved model (a run's model/ folder).")
    predict.add_argument("--model-dir", type=Path, required=True, help="a saved model directory")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", type=Path, help="a file with one text per line ('-' for stdin)")
    predict.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def _setup_logging(quiet: bool, verbose: bool = False) -> None:
    # Log lines and warnings go to stderr as plain lines; stdout holds only what was asked for (paths, tables).
    # Libraries' own loggers keep their levels.
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def _report_benchmark(args, store) -> str:
    """The benchmark ``report`` rebuilds: the one named, else the store's only one (listed when several)."""
    if args.benchmark:
        return args.benchmark
    held = store.benchmarks()
    if len(held) == 1:
        return held[0]
    where = str(store.root)
    if not held:
        raise HarnessInputError(where, "holds no benchmark's runs", "pass --results-dir of a store, or --benchmark NAME")
    raise HarnessInputError(where, f"holds several benchmarks ({', '.join(held)})", "name one with --benchmark NAME")


def _list(args) -> int:
    import harness.models  # noqa: F401 - registers the family table, so each entry's family and params are checked
    from harness.config.registry import list_benchmarks, load_benchmark, load_registry

    registry = load_registry(args.registry)
    print("models:")
    for spec in registry.values():
        print(f"  {spec.name:<26} {spec.family:<12} {spec.description}")
    print("benchmarks:")
    for name in list_benchmarks(args.benchmarks_dir):
        spec, _ = load_benchmark(name, args.benchmarks_dir)
        print(f"  {name:<30} {spec.num_labels} classes, budgets {', '.join(spec.budgets)} (default {spec.default_budget})")
    return 0


def _report(args) -> int:
    from harness.config.registry import load_benchmark
    from harness.report import publish as report
    from harness.report.board import Leaderboard
    from harness.store.results_store import ResultsStore

    store = ResultsStore(args.results_dir)
    spec, _ = load_benchmark(_report_benchmark(args, store), args.benchmarks_dir)
    if not store.benchmark_dir(spec.name).is_dir():
        # Nothing to rebuild: say so and leave the store as it is (no empty benchmark folder behind).
        held = store.benchmarks()
        raise HarnessInputError(
            str(store.root), f"holds no runs of benchmark '{spec.name}'",
            f"run it first, or report one it holds ({', '.join(held)})" if held else "run it first",
        )
    # One writer of a benchmark's files at a time: a report never overwrites a running job's newer one.
    with store.lock(spec.name):
        board = Leaderboard.from_store(store, spec, args.configuration)
        try:
            path = report.publish(store, board)
        except OSError as exc:
            # A full or read-only store: the runs in it are untouched; say so in one line instead of a traceback.
            log.warning(f"could not write the report: {exc}; rerun 'report' once there is room")
            return 1
    if not args.quiet:
        say(f"leaderboard: {path} (configuration {board.configuration.label})")
    configurations = store.configurations(spec.name)
    if len(configurations) > 1:
        log.info("configurations in this store (report one with --configuration LABEL):")
        for configuration in configurations:
            log.info(f"  {configuration.label}: {configuration.describe()}")
    for _, reason in board.runs.invalid:
        log.warning(f"not used: {reason}")
    # Runs that could not be read are a problem to fix, not a clean rebuild.
    return 1 if board.runs.invalid else 0


def _predict(args) -> int:
    import json

    from harness.run.predict import predict_texts, read_texts

    texts = list(args.texts)
    if args.file:
        texts += read_texts(args.file)
    if not texts:
        raise HarnessInputError("predict", "no texts given", "pass texts as arguments or --file FILE")
    try:
        results = predict_texts(args.model_dir, texts)
    except HarnessInputError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        # A folder that is not a model saved by the harness (or a tampered one) is bad input, not a crash.
        raise HarnessInputError(
            str(args.model_dir),
            f"cannot load a saved model ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
            "pass a folder written by a run (results/<benchmark>/configs/<configuration>/runs/<model>/seed-N/model)",
        ) from None
    for text, result in zip(texts, results, strict=True):
        if args.json:
            print(json.dumps({"text": text, **result}))
        else:
            probs = ", ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items())
            print(f"{result['label']}\t{result['score']:.3f}\t[{probs}]\t{text[:80]}")
    return 0


def _devices(text: str | None) -> list[str] | None:
    if text is None:
        return None
    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices or not all(d.isdigit() for d in devices):
        raise HarnessInputError("--devices", f"{text!r} is not a list of device numbers", "write e.g. --devices 0,1,2,3")
    return devices


def check_trackers(log_with: str | None) -> list[str] | None:
    """The trackers to hand to Accelerate; one line naming the missing package when one is not installed."""
    if log_with is None:
        return None
    import importlib.util

    names = list(TRACKERS) if log_with == "all" else [log_with]
    for name in names:
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise HarnessInputError("--log-with", f"the {name} tracker is not installed", f"pip install {TRACKERS[name]}")
    return names


def _run(args) -> int:
    from harness import pipeline

    if args.list:
        return _list(args)
    if args.report_only and suite_requested(args):
        raise HarnessInputError(
            "--report-only", "rebuilds one benchmark's leaderboard, not a suite's summary",
            "rerun the suite command: finished runs are skipped and the summary is rebuilt",
        )
    if args.report_only:
        if args.force or args.models != "all" or args.limit_train or args.limit_test or args.seeds != 1:
            raise HarnessInputError(
                "--report-only", "trains nothing, so --force, --models, --limit-*, --seeds do not apply",
                "drop them, or name the configuration with --configuration",
            )
        return _report(args)
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
        fixed_train_sample=args.fixed_train_sample,
        log_with=check_trackers(args.log_with),
        executor=args.executor,
        parallel=args.parallel,
        devices=_devices(args.devices),
        ray_address=args.ray_address,
        assume_yes=args.yes,
    )
    if suite_requested(args):
        return _run_suite(args, config)
    if args.data_root is not None:
        raise HarnessInputError(
            "--data-root", "applies to several benchmarks (a comma list or --suite)", "pass --data-dir for one benchmark"
        )
    summary = pipeline.run(config)
    if summary.declined:
        print(f"stopped: {summary.declined}; finished runs are kept and in the leaderboard (cut the time with "
              "--limit-train N, a smaller --budget or fewer --models, or pass --yes to run it as is)", file=sys.stderr)
        return 1
    if summary.failed:
        print(f"{len(summary.failed)} run(s) failed: {', '.join(summary.failed)} (see the leaderboard)", file=sys.stderr)
        return 1
    return 0


def suite_requested(args) -> bool:
    from harness.suite import wants_suite

    return wants_suite(args.benchmark, args.suite)


def _run_suite(args, config) -> int:
    from harness import suite

    if args.transfer_matrix:
        raise HarnessInputError("--transfer-matrix", "runs on one benchmark", "drop it, or run the benchmarks apart")
    members = suite.resolve_suite(suite=args.suite, benchmark=args.benchmark, data_root=args.data_root,
                                  data_dir=args.data_dir, benchmarks_dir=args.benchmarks_dir)
    outcome = suite.run_suite(members, config)
    if outcome.failed:
        print(f"{len(outcome.failed)} problem(s) in suite {members.name}: {'; '.join(outcome.failed)} "
              "(see the summary and each leaderboard)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # No subcommand means 'run', so `python run_benchmark.py --models all` keeps working.
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["run", *argv]
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
        if args.command == "predict":
            return _predict(args)
        if args.command == "list":
            return _list(args)
        if args.command == "report":
            return _report(args)
        return _run(args)
    except HarnessInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # A printed table (list, predict) whose reader closed the pipe: the rest is not wanted; exit 1 as Python does
        # on a broken pipe, without a traceback. (Log lines never get here: their handler goes quiet on its own.)
        stdout_closed()
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
