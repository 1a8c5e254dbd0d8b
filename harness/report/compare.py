"""Two configurations of one benchmark compared model by model on their shared test examples: a regression gate.

A side is a configuration label (or a unique prefix) in a results store, or a folder: a store, a benchmark's
folder in one, or one configuration's folder (``.../<benchmark>/configs/<label>``), e.g. from another harness
version. Every model present on both sides is paired over the same test examples (ids of its predictions.csv):

- the difference B - A of the chosen metric's mean over seeds, with its 95% interval and two-sided p from the
  paired bootstrap (``stats.paired_seed_mean_bootstrap``: every seed of both sides on the same resamples);
- accuracy by McNemar's exact test per seed pair (``stats.mcnemar``, scipy's binomtest);
- cost ratios B / A (batch-1 latency p50, eval throughput, train time, peak train RSS), flagged when the sides
  ran on different devices.

Sides scored on different test examples (another test file, another ``--limit-test``) are refused in one line
unless ``intersection`` is asked for; examples sharing an id but not a label are refused always.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.config.options import CompareOptions
from harness.config.registry import load_benchmark
from harness.config.schema import BenchmarkSpec
from harness.core.errors import HarnessInputError
from harness.core.escape import escape
from harness.metrics import stats
from harness.metrics.columns import MetricColumn, column
from harness.report import markdown
from harness.report.analysis import Predictions, aligned
from harness.report.board import ModelRow, PredictionFiles, RunSet, model_rows
from harness.report.cells import fmt, p_value
from harness.report.document import BulletList, Section, Table
from harness.report.records import get
from harness.store.results import Configuration, benchmark_hash
from harness.store.results_store import CONFIGURATION_FILE, ResultsStore

SCHEMA_VERSION = 1


@dataclass
class Side:
    """One side of the comparison: where it was read and each model's row with its predictions."""

    given: str
    store: ResultsStore
    configuration: Configuration
    rows: dict[str, ModelRow] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return str(self.store.config_dir(self.configuration.benchmark, self.configuration.label))


# ----- finding the sides ------------------------------------------------------------------------------------


def locate(given: str, results_dir: Path, benchmark: str | None) -> tuple[ResultsStore, str | None, str | None]:
    """(store, benchmark name or None, configuration label or None) of a side as given on the command line."""
    path = Path(given)
    if path.is_dir():
        if (path / CONFIGURATION_FILE).is_file() and path.parent.name == "configs":
            return ResultsStore(path.parent.parent.parent), path.parent.parent.name, path.name
        if (path / "configs").is_dir():
            return ResultsStore(path.parent), path.name, None
        return ResultsStore(path), benchmark, None
    return ResultsStore(results_dir), benchmark, given


def _benchmark_name(store: ResultsStore, named: str | None) -> str:
    if named:
        return named
    held = store.benchmarks()
    if len(held) == 1:
        return held[0]
    problem = f"holds several benchmarks ({', '.join(held)})" if held else "holds no benchmark's runs"
    raise HarnessInputError(str(store.root), problem, "name one with --benchmark NAME")


def read_side(given: str, store: ResultsStore, spec: BenchmarkSpec, label: str | None) -> Side:
    """The configuration a side names, every model's row read once; refused in one line when it is not there."""
    configuration = store.find_configuration(spec.name, label)
    if configuration is None:
        known = [c.label for c in store.configurations(spec.name)]
        raise HarnessInputError(
            given, f"no configuration {label!r} of benchmark {spec.name} in {store.root}" if label
            else f"no configuration of benchmark {spec.name} in {store.root}",
            f"choose one of {known}" if known else "pass a results folder or a configuration label that holds runs",
        )
    runs = RunSet.read(store, spec.name, configuration.label, spec.label_names)
    rows = {row.model: row for row in model_rows(runs, PredictionFiles(spec.num_labels), spec) if row.predictions}
    return Side(given, store, configuration, rows)


# ----- the test examples ------------------------------------------------------------------------------------


def eval_fingerprint(configuration: Configuration, spec: BenchmarkSpec) -> object:
    """What identifies the evaluation split's data: its file hash, else the data identity less the train split's."""
    data = configuration.data
    if spec.eval_split in data:
        return data[spec.eval_split]
    return {k: v for k, v in data.items() if k != "train"} or None


def check_examples(a: Side, b: Side, spec: BenchmarkSpec, intersection: bool) -> list[str]:
    """Refuse sides scored on other test examples (unless ``intersection``); what was checked, as lines."""
    fa, fb = eval_fingerprint(a.configuration, spec), eval_fingerprint(b.configuration, spec)
    differ = []
    if fa != fb:
        differ.append(f"the {spec.eval_split} data differ ({_short(fa)} vs {_short(fb)})")
    for model in sorted(set(a.rows) & set(b.rows)):
        ids_a, ids_b = a.rows[model].predictions[0].ids, b.rows[model].predictions[0].ids
        if not np.array_equal(np.sort(ids_a), np.sort(ids_b)):
            shared = len(np.intersect1d(ids_a, ids_b))
            differ.append(f"{model} was scored on {len(ids_a):,} vs {len(ids_b):,} examples, {shared:,} shared")
            break
    if differ and not intersection:
        raise HarnessInputError(
            f"compare {a.given} {b.given}", "the two sides were scored on different test examples: " + "; ".join(differ),
            "compare configurations of the same test data, or pass --intersection to compare on the shared examples",
        )
    return [f"compared on the examples both scored, as asked (--intersection): {'; '.join(differ)}"] if differ else []


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:16] if isinstance(value, str) else text[:80]


# ----- one model --------------------------------------------------------------------------------------------


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _peak(results) -> float | None:
    return max((v for r in results if (v := get(r, "memory", "train", "rss_peak_bytes"))), default=None)


COSTS = {  # name -> (what it reads, a function of a row's results)
    "latency_p50_ms": lambda rs: _mean([get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in rs]),
    "eval_samples_per_s": lambda rs: _mean([get(r, "inference", "throughput_samples_per_s") for r in rs]),
    "train_seconds": lambda rs: _mean([get(r, "training", "train_seconds") for r in rs]),
    "peak_rss_train_bytes": _peak,
}


def _costs(row_a: ModelRow, row_b: ModelRow) -> dict:
    out = {}
    for name, read in COSTS.items():
        va, vb = read(row_a.results), read(row_b.results)
        out[name] = {"a": va, "b": vb, "ratio": vb / va if va and vb is not None else None}
    devices_a = sorted({get(r, "device", "device_name") or "?" for r in row_a.results})
    devices_b = sorted({get(r, "device", "device_name") or "?" for r in row_b.results})
    out["devices"] = {"a": devices_a, "b": devices_b, "differ": devices_a != devices_b}
    return out


def _aligned_side(a: list[Predictions], b: list[Predictions]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ia, ib, common = aligned(a[0], b[0])
    if not np.array_equal(a[0].labels[ia], b[0].labels[ib]):
        wrong = int((a[0].labels[ia] != b[0].labels[ib]).sum())
        raise HarnessInputError(
            f"compare ({a[0].model})", f"{wrong:,} test examples share an id but not a label: not the same data",
            "compare configurations scored on the same test file",
        )
    return ia, ib, common


def _verdict(diff: float, p: float, metric: MetricColumn, options: CompareOptions) -> str:
    if not math.isfinite(p) or p >= options.alpha:
        return "no significant change"
    worse = diff < 0 if metric.higher_is_better else diff > 0
    if worse:
        return "regression" if abs(diff) > options.min_drop else "significant drop within --min-drop"
    return "improvement"


def compare_model(row_a: ModelRow, row_b: ModelRow, metric: MetricColumn, options: CompareOptions) -> dict:
    """One model on both sides: paired bootstrap of the metric (B - A), McNemar of accuracy, cost ratios."""
    a, b = row_a.predictions, row_b.predictions
    ia, ib, common = _aligned_side(a, b)
    labels = a[0].labels[ia]
    paired = stats.paired_seed_mean_bootstrap(labels, [p.probs[ib] for p in b], [p.probs[ia] for p in a],
                                              metric.interval, n_boot=options.n_boot, seed=0, alpha=0.05)
    pairs = list(zip(b, a, strict=False)) if min(len(a), len(b)) > 1 else [(pb, pa) for pb in b for pa in a]
    mcnemar = [{"seed_b": pb.seed, "seed_a": pa.seed,
                **stats.mcnemar(labels, pb.predicted[ib], pa.predicted[ia], exact_below=10**9)} for pb, pa in pairs]
    accuracy = [float(np.mean([stats.accuracy(labels, p.probs[idx]) for p in side])) for side, idx in ((a, ia), (b, ib))]
    return {
        "model": row_a.model,
        "examples": int(len(common)),
        "seeds_a": [p.seed for p in a],
        "seeds_b": [p.seed for p in b],
        "metric": metric.name,
        "a": float(np.mean([metric.interval(labels, p.probs[ia]) for p in a])),
        "b": float(np.mean([metric.interval(labels, p.probs[ib]) for p in b])),
        "paired_bootstrap": paired,
        "accuracy_a": accuracy[0],
        "accuracy_b": accuracy[1],
        "mcnemar": mcnemar,
        "verdict": _verdict(paired["diff"], paired["p_value"], metric, options),
        "costs": _costs(row_a, row_b),
    }


# ----- the whole comparison ---------------------------------------------------------------------------------


def _metric(options: CompareOptions, spec: BenchmarkSpec) -> MetricColumn:
    name = options.metric or spec.main_metric
    try:
        chosen = column(name)
    except ValueError:
        chosen = None
    if chosen is None or chosen.interval is None:
        with_interval = ", ".join(c.name for c in _interval_columns())
        raise HarnessInputError("--metric", f"{name!r} has no paired bootstrap", f"use one of {with_interval}")
    return chosen


def _interval_columns() -> list[MetricColumn]:
    from harness.metrics.columns import columns

    return [c for c in columns() if c.interval is not None]


def compare(a_given: str, b_given: str, options: CompareOptions, benchmarks_dir: Path | None = None) -> dict:
    """The comparison of side B against side A, as a dict (what ``--json`` writes and ``render`` prints)."""
    located = [locate(g, options.results_dir, options.benchmark) for g in (a_given, b_given)]
    names = {_benchmark_name(store, name) for store, name, _ in located}
    if len(names) > 1:
        raise HarnessInputError(f"compare {a_given} {b_given}", f"the sides are of different benchmarks "
                                f"({', '.join(sorted(names))})", "compare two configurations of one benchmark")
    spec, _ = load_benchmark(options.benchmark or names.pop(), benchmarks_dir)
    metric = _metric(options, spec)
    a, b = (read_side(g, store, spec, label) for g, (store, _, label) in zip((a_given, b_given), located, strict=True))
    notes = check_examples(a, b, spec, options.intersection)
    for side, name in ((a, "A"), (b, "B")):
        if side.configuration.benchmark_hash != benchmark_hash(spec):
            notes.append(f"{name} was made with another definition of {spec.name} (benchmark_hash "
                         f"{side.configuration.benchmark_hash}); its classes are read as the YAML names them now")
    shared = [m for m in b.rows if m in a.rows]
    models = [compare_model(a.rows[m], b.rows[m], metric, options) for m in shared]
    if any(m["costs"]["devices"]["differ"] for m in models):
        notes.append("some models ran on other devices on the two sides: their cost ratios are not comparable")
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": spec.name,
        "metric": metric.name,
        "alpha": options.alpha,
        "min_drop": options.min_drop,
        "resamples": options.n_boot,
        "a": _side_record(a),
        "b": _side_record(b),
        "notes": notes,
        "models": models,
        "only_in_a": sorted(set(a.rows) - set(b.rows)),
        "only_in_b": sorted(set(b.rows) - set(a.rows)),
        "regressions": [m["model"] for m in models if m["verdict"] == "regression"],
    }


def _side_record(side: Side) -> dict:
    return {"given": side.given, "folder": side.where, "configuration": side.configuration.label,
            "describe": side.configuration.describe()}


# ----- the report -------------------------------------------------------------------------------------------


def _ratio(cost: dict) -> str:
    return "n/a" if cost["ratio"] is None else f"{cost['ratio']:.2f}x"


def _model_row(m: dict, digits: int) -> list:
    boot = m["paired_bootstrap"]
    tests = m["mcnemar"]
    costs = m["costs"]
    return [
        escape(m["model"]), f"{fmt(m['a'], digits)} → {fmt(m['b'], digits)}",
        f"{boot['diff']:+.{digits}f} [{boot['low']:+.{digits}f}, {boot['high']:+.{digits}f}]",
        p_value(boot["p_value"], boot.get("p_floor")),
        f"{m['accuracy_b'] - m['accuracy_a']:+.{digits}f}",
        "; ".join(f"{t['b']}/{t['c']}" for t in tests), "; ".join(p_value(t["p_value"]) for t in tests),
        m["verdict"], m["examples"],
        *(_ratio(costs[name]) for name in COSTS),
        ("differ: " if costs["devices"]["differ"] else "") + escape(" / ".join(", ".join(costs["devices"][s]) for s in "ab")
                                                                    if costs["devices"]["differ"] else ", ".join(costs["devices"]["a"])),
    ]  # fmt: skip


def render(report: dict) -> str:
    """The comparison as markdown."""
    metric = column(report["metric"])
    items = [f"**A**: `{escape(report['a']['configuration'])}` ({escape(report['a']['folder'])}): {report['a']['describe']}",
             f"**B**: `{escape(report['b']['configuration'])}` ({escape(report['b']['folder'])}): {report['b']['describe']}",
             *(f"**Note**: {note}" for note in report["notes"]),
             f"**Regression**: {metric.label} significantly lower in B (paired bootstrap p < {report['alpha']}) by more "
             f"than {report['min_drop']}: " + (", ".join(report["regressions"]) or "none")]
    columns = ["model", f"{metric.label} A → B", f"Δ {metric.label} (B - A) [95% CI]", "p (paired bootstrap)",
               "Δ accuracy", "McNemar b/c per seed pair", "p (McNemar, exact)", "verdict", "examples",
               "p50 latency B/A", "throughput B/A", "train time B/A", "peak RSS train B/A", "device"]
    caption = (f"Paired bootstrap ({report['resamples']:,} resamples of the shared test examples, every seed of both "
               f"sides on each resample) of the difference in mean {metric.label}; McNemar: exact binomial test of "
               "accuracy per seed pair, b = only B right, c = only A right. Cost ratios compare means over seeds; "
               "they mean something only on the same device.")
    table = Table(columns, [_model_row(m, metric.digits) for m in report["models"]], notes=caption)
    blocks = [BulletList(items), table]
    only = [f"only in A: {', '.join(report['only_in_a'])}" for _ in [0] if report["only_in_a"]]
    only += [f"only in B: {', '.join(report['only_in_b'])}" for _ in [0] if report["only_in_b"]]
    if only:
        blocks.append(BulletList([escape(o) for o in only]))
    return markdown.render([Section(f"Comparison: {escape(report['benchmark'])}, B against A", blocks, level=1)])


def exit_code(report: dict, options: CompareOptions) -> int:
    """1 when asked to fail on a regression and a model regressed, else 0."""
    return 1 if options.fail_on_regression and report["regressions"] else 0


def write_json(report: dict, path: Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, allow_nan=True, default=float) + "\n")
