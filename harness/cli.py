"""Command line: parse arguments, hand over to the library. Nothing else lives here.

``textclf-bench`` (and ``python run_benchmark.py``) has five subcommands, each with its own ``--help``:
``run`` (the default when none is named, so ``python run_benchmark.py --models all`` works), ``report``,
``list``, ``predict`` and ``compare``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from types import UnionType
from typing import Literal, Union, get_args, get_origin

from harness.config.options import RESULTS_HELP, CompareOptions, RunOptions, default_results_dir
from harness.core.errors import HarnessInputError
from harness.core.output import StderrHandler, say, stdout_closed
from harness.core.version import __version__

PROG = "textclf-bench"
SUBCOMMANDS = ("run", "report", "list", "predict", "compare")
log = logging.getLogger("harness")
# The run subcommand's flags that are not run options (RunOptions): its modes and its log level. The API has
# functions of its own for the modes (load_leaderboard, ...) and leaves logging to the caller.
COMMAND_ONLY = ("report_only", "configuration", "list", "verbose")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line like every other input error (argparse would print the whole usage first), exit code 2.
        raise HarnessInputError(self.prog, message, f"see '{self.prog} -h'")


def _common(parser: argparse.ArgumentParser) -> None:
    # Where the registry and the benchmarks are: declared with the run options, shared by every subcommand.
    for declared in RunOptions.declared():
        if declared.name in ("registry", "benchmarks_dir"):
            _add_option(parser, declared)


def _run_options(parser: argparse.ArgumentParser) -> None:
    """One flag per field of ``RunOptions``: its name, help and default come from the field."""
    for declared in RunOptions.declared():
        if declared.name not in ("registry", "benchmarks_dir"):  # added by _common, last as before
            _add_option(parser, declared)


def _add_option(parser: argparse.ArgumentParser, declared) -> None:
    option, kind = declared.option, _kind(declared.annotation)
    flags = [option.flag, *([option.short] if option.short else [])]
    extra: dict = {"dest": declared.name, "default": declared.default, "help": option.help}
    if kind is bool:
        extra["action"] = "store_false" if option.negate else "store_true"
    else:
        extra["metavar"] = option.metavar
        if option.repeat:
            extra["action"] = "append"
        if get_origin(kind) is Literal:
            extra["choices"] = list(get_args(kind))
        else:  # every whole number counts something; lists and tables arrive as text RunOptions reads
            extra["type"] = {int: _positive_int, float: float, Path: Path}.get(kind, str)
    parser.add_argument(*flags, **extra)


def _kind(annotation):
    """The type a flag's text becomes: the annotation without None (a union of several: text)."""
    union = get_origin(annotation) in (Union, UnionType)
    args = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
    return args[0] if len(args) == 1 and get_origin(args[0]) in (None, Literal) else str


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A comparative benchmark for text classifiers: fine-tune and evaluate registry models under "
        "one identical budget and write results/<benchmark>/leaderboard.md. Without a subcommand, 'run' is meant.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="{run,report,list,predict,compare}")

    run = sub.add_parser("run", help="train and evaluate models on a benchmark, then write its leaderboard",
                         description="Train and evaluate models on a benchmark under its shared budget; skip runs "
                         "already in the store; write the leaderboard of this configuration.")
    _run_options(run)
    # How this command runs, not options of a run (COMMAND_ONLY): its modes and its log level.
    run.add_argument("--report-only", action="store_true", help="same as the 'report' subcommand")
    run.add_argument("--configuration", default=None, help="with --report-only: the configuration label to report")
    run.add_argument("--list", action="store_true", help="same as the 'list' subcommand")
    run.add_argument("-v", "--verbose", action="store_true", help="debug lines as well")
    _common(run)

    report = sub.add_parser("report", help="rebuild a leaderboard from the store; train nothing",
                            description="Rebuild a benchmark's leaderboard from the results store and list its "
                            "configurations. Default: the configuration the last run used.")
    report.add_argument("--benchmark", default=None,
                        help="benchmark name or a YAML path (default: the store's benchmark, when it holds one)")
    report.add_argument("--configuration", default=None, help="configuration label (or a unique prefix) to report")
    report.add_argument("--results-dir", type=Path, default=default_results_dir(), help=RESULTS_HELP)
    report.add_argument("--quiet", action="store_true", help="warnings and errors only")
    report.add_argument("--open", action="store_true",
                        help="open leaderboard.html in the default browser (prints its path when there is none)")
    report.add_argument("-v", "--verbose", action="store_true", help="debug lines as well")
    _common(report)

    listing = sub.add_parser("list", help="list registry models and benchmarks",
                             description="List the registry's models and the benchmarks with their budgets.")
    _common(listing)

    predict = sub.add_parser("predict", help="classify texts with a saved model",
                             description="Classify texts with a saved model (a run's model/ folder).")
    predict.add_argument("--model-dir", type=Path, required=True, help="a saved model directory")
    predict.add_argument("texts", nargs="*", help="texts to classify")
    predict.add_argument("--file", type=Path, help="a file with one text per line ('-' for stdin); one output row "
                         "per line: a blank line gives a row marked blank (label and score '-', in JSON null with "
                         '"blank": true), not classified')
    predict.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    predict.add_argument("--variant", choices=["pytorch", "onnx", "onnx-int8"], default="pytorch",
                         help="serve the PyTorch weights (default) or the run's ONNX Runtime file (fp32 or int8)")
    _compare_parser(sub)
    return parser


def _compare_parser(sub) -> None:
    compare = sub.add_parser(
        "compare", help="compare two configurations model by model on the same test examples (a regression gate)",
        description="Compare B against A, model by model, on the test examples both scored: the paired bootstrap "
        "of the main metric, McNemar of accuracy, cost ratios. Exit codes: 0 compared (no regression, or no "
        "--fail-on-regression), 1 a regression with --fail-on-regression, 2 bad input (refused in one line).")
    compare.add_argument("a", metavar="A", help="configuration label or prefix, or a results / benchmark / "
                         "configuration folder")
    compare.add_argument("b", metavar="B", help="the same, for the side compared against A")
    for declared in CompareOptions.declared():
        _add_option(compare, declared)
    _common(compare)


def _compare(args) -> int:
    from harness.report import compare

    names = [d.name for d in CompareOptions.declared()]
    options = CompareOptions.validated({k: v for k, v in vars(args).items() if k in names})
    report = compare.compare(args.a, args.b, options, args.benchmarks_dir)
    if options.json_path is not None:
        compare.write_json(report, options.json_path)
    print(compare.render(report), end="")
    return compare.exit_code(report, options)


def _setup_logging(quiet: bool, verbose: bool = False) -> None:
    # Log lines and warnings go to stderr as plain lines; stdout holds only what was asked for (paths, tables).
    # Libraries' own loggers keep their levels.
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    if quiet:
        # A label the figures' font has no glyph for is drawn as a box; the markdown and the page show it as
        # written. matplotlib's warning per glyph is not about the results: --quiet keeps warnings that are.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)


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
    if getattr(args, "open", False):
        open_page(path.with_name("leaderboard.html"))
    configurations = store.configurations(spec.name)
    if len(configurations) > 1:
        log.info("configurations in this store (report one with --configuration LABEL):")
        for configuration in configurations:
            log.info(f"  {configuration.label}: {configuration.describe()}")
    for _, reason in board.runs.invalid:
        log.warning(f"not used: {reason}")
    # Runs that could not be read are a problem to fix, not a clean rebuild.
    return 1 if board.runs.invalid else 0


def open_page(page: Path) -> bool:
    """Open a report's page in the default browser; print its path when there is no browser (or no page)."""
    import webbrowser

    if page.is_file():
        try:
            if webbrowser.open(page.resolve().as_uri()):
                return True
        except webbrowser.Error:
            pass
        print(f"open {page} in a browser")
    else:
        print(f"no page at {page} (is plotly installed?)")
    return False


def _predict(args) -> int:
    import json

    from harness.run.predict import predict_texts, read_texts

    texts = list(args.texts)
    if args.file:
        texts += read_texts(args.file)
    if not any(text.strip() for text in texts):
        raise HarnessInputError("predict", "no texts given", "pass texts as arguments or --file FILE")
    try:
        results = predict_texts(args.model_dir, texts, variant=args.variant)
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
        elif result.get("blank"):
            print("-\t-\t[blank line: not classified]\t")
        else:
            probs = ", ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items())
            print(f"{result['label']}\t{result['score']:.3f}\t[{probs}]\t{text[:80]}")
    return 0


def _run(args) -> int:
    from harness import pipeline
    from harness.config.suites import wants_suite

    if args.list:
        return _list(args)
    if args.report_only and wants_suite(args.benchmark, args.suite):
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
    options = RunOptions.validated({k: v for k, v in vars(args).items() if k in RunOptions.model_fields})
    if options.is_suite:
        return _run_suite(options)
    options.one_benchmark()
    summary = pipeline.run(options)
    if summary.declined:
        print(f"stopped: {summary.declined}; finished runs are kept and in the leaderboard (cut the time with "
              "--limit-train N, a smaller --budget or fewer --models, or pass --yes to run it as is)", file=sys.stderr)
        return 1
    if summary.failed:
        print(f"{len(summary.failed)} run(s) failed: {', '.join(summary.failed)} (see the leaderboard)", file=sys.stderr)
        return 1
    return 0


def _run_suite(options: RunOptions) -> int:
    from harness import suite

    outcome = suite.run_command(options)
    if outcome.failed:
        print(f"{len(outcome.failed)} problem(s) in suite {outcome.suite.name}: {'; '.join(outcome.failed)} "
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
        if args.command == "compare":
            return _compare(args)
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
