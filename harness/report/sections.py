"""The leaderboard's sections, in no format, each built from the :class:`~harness.report.board.Leaderboard` alone.

One builder per section; each returns a :class:`~harness.report.document.Section` (None when it has nothing to
show). :func:`leaderboard` puts them in reading order; ``harness.report.markdown`` writes them and
``harness.report.html`` writes the same list as a page.
"""

from __future__ import annotations

import math

import numpy as np

from harness.config.schema import BenchmarkSpec
from harness.core.escape import escape
from harness.metrics.columns import MetricColumn
from harness.metrics.columns import column as metric_column
from harness.report import conditions, groups, tuning
from harness.report.board import Leaderboard, ModelRow, tested_column
from harness.report.cells import budget_text, count, fmt, interval, mean_std, p_value, pct
from harness.report.document import BulletList, Figure, Gallery, Paragraph, Section, Table, document
from harness.report.records import get

ERRORS_FILE = "errors.md"
EXPECTED_VALIDATION_FIGURE = f"{groups.PLOTS_DIR}/expected_validation.png"


def leaderboard(board: Leaderboard, figures: list[Figure] | None, with_groups: bool = True) -> list[Section]:
    """Every section of leaderboard.md in reading order; ``figures`` are the plots drawn (None: no files)."""
    group = [per_group(board.spec, c, scored) for c, scored in board.group_tables.items()]
    group += [transfer(c, matrices) for c, matrices in board.transfer.items()]
    return document(
        [
            header(board), models(board), settings(board), expected_validation(board, figures), truncation(board), cost(board), deployment_variants(board),
            per_class(board), per_class_detail(board), *(group if with_groups else []), paired_tests(board),
            plots(figures), error_analysis(figures), invalid_runs(board), other_configurations(board),
        ]
    )  # fmt: skip


# ----- header ----------------------------------------------------------------------------------------------


def _sample_note(spec: BenchmarkSpec, train_rows, eval_rows, local_rows: dict[str, int | None] | None = None) -> str:
    """What each split's rows are a sample of: the published split's size (``official_sizes``), and with local
    files (``local_rows``: the rows each file held) the file's own, which may differ from the published split."""
    official = spec.official_sizes
    notes = []
    for split, rows in (("train", train_rows), (spec.eval_split, eval_rows)):
        full, local = official.get(split), (local_rows or {}).get(split)
        if local is None:
            if full and rows is not None and rows < full:
                notes.append(f"{split}: a sample of {rows:,} of {full:,} rows")
            continue
        published = f"; the published split has {full:,}" if full and full != local else ""
        if rows is not None and rows < local:
            notes.append(f"{split}: a sample of {rows:,} of the local file's {local:,} rows{published}")
        elif published:
            notes.append(f"{split}: all {local:,} rows of the local file{published}")
    return f" ({'; '.join(notes)})" if notes else ""


def _local_rows(results) -> dict[str, int | None] | None:
    """The rows each local file held (train, the evaluation split), when every run read the same files; None for
    hub data, the shipped sample, or runs written before the split's rows were recorded."""
    if not results or any(r.data.kind != "local" for r in results):
        return None
    train = {r.data.train_split_rows for r in results}
    evaluation = {r.data.eval_split_rows for r in results}
    if len(train) != 1 or len(evaluation) != 1 or None in train | evaluation:
        return None
    return {"train": train.pop(), results[0].data.eval_split: evaluation.pop()}


def _harness_text(results) -> str:
    versions = sorted({(get(r, "environment", "harness_version"), get(r, "environment", "harness_source_sha256"),
                        get(r, "environment", "git_commit"), get(r, "environment", "git_modified")) for r in results},
                      key=str)
    shown = []
    for version, source, commit, modified in versions:
        text = f"{version} (source {source or '?'}"
        if commit:
            text += f", commit {commit[:12]}" + (", harness code modified" if modified else "")
        shown.append(text + ")")
    return "; ".join(shown) or "n/a"


def _data_text(board: Leaderboard) -> str:
    spec, results = board.spec, board.completed_results
    data_kinds = sorted({r.data.kind for r in results})
    train_rows = sorted({r.data.train_rows for r in results})
    eval_rows = sorted({r.data.eval_rows for r in results})
    train_text = ", ".join(f"{n:,}" for n in train_rows) or "?"
    eval_text = ", ".join(f"{n:,}" for n in eval_rows) or "?"
    one = len(train_rows) == 1 and len(eval_rows) == 1
    return (
        f"{train_text} train rows, {eval_text} rows of the '{spec.eval_split}' split "
        f"({', '.join(data_kinds) or '?'} source)" + (_sample_note(spec, train_rows[0], eval_rows[0], _local_rows(results)) if one else "")
    )


def _notes(results) -> list[str]:
    notes = sorted({note for r in results if (note := getattr(r.data, "note", None))})
    if any(r.data.kind.startswith("embedded") for r in results):
        notes = notes or ["scored on the small sample shipped with the harness: a smoke test, not the benchmark's "
                          "published numbers"]
    return notes


def _ranked_by(board: Leaderboard) -> str:
    """The main metric as the header names it ("accuracy, the benchmark's main metric (...)"), with its direction
    when lower is better."""
    main = board.main
    said = escape(main.label) if board.spec.main_metric == "f1_macro" else f"{escape(main.label)}, the benchmark's main metric"
    when = "mean over seeds when several" if main.higher_is_better else "lower is better; mean over seeds when several"
    return f"{said} ({when})"


def _leakage_items(board: Leaderboard) -> list[str]:
    """One line per distinct leakage count the runs recorded (none for runs written before it was measured)."""
    found = {r.data.leakage.model_dump_json(): r.data.leakage for r in board.completed_results if r.data.leakage}
    items = []
    for leak in found.values():
        text = (f"**Leakage**: {leak.in_train:,} of {leak.eval_texts:,} {escape(board.spec.eval_split)} texts also "
                "occur in the train split (exact after Unicode NFKC, whitespace and case normalisation)")
        for column, counts in leak.by_group.items():
            text += f"; per {escape(column)}: " + ", ".join(f"{escape(v)} {n:,}" for v, n in counts.items())
        if leak.dropped_from_train:
            text += f"; the {leak.dropped_from_train:,} train row(s) holding them were removed (dedupe: drop_from_train)"
        elif leak.in_train:
            text += f"; kept in train ({leak.train_rows_matching:,} row(s); dedupe: drop_from_train removes them)"
        items.append(text)
    return items


def header(board: Leaderboard) -> Section:
    """The title, the benchmark's description and what every row shares (configuration, data, device, harness)."""
    spec, configuration, results = board.spec, board.configuration, board.completed_results
    devices = sorted({get(r, "device", "device_name") or "?" for r in results})
    items = [
        f"**Configuration**: `{configuration.label}`: {configuration.describe()}",
        f"**Shared budget** (every model; a row's own overrides are in its notes): {budget_text(configuration.budget)}",
        f"**Data**: {_data_text(board)}",
        f"**Device**: {', '.join(devices) or 'n/a'} (latency and throughput are only comparable on the same device)",
        *(f"**Note**: {escape(note)}" for note in _notes(results)),
        *(f"**Warning**: {warning}" for warning in board.warnings),
        *([f"**Note**: {board.macro_note}"] if board.macro_note else []),
        *_leakage_items(board),
        f"**Harness**: {_harness_text(results)}",
        tests_line(board),
        f"Sorted by {_ranked_by(board)}. Latency: batch 1, raw text in, probabilities out, after warm-up. Peak RSS: "
        "the model's own process during training.",
    ]
    blocks = [Paragraph(escape(spec.description.strip())), BulletList(items)]
    return Section(f"Leaderboard: {escape(spec.name)}", blocks, level=1)


def tests_line(board: Leaderboard) -> str:
    """Which test each p of the page comes from: they test different things and can disagree."""
    ranked = tested_column(board.main).label
    return (
        f"**Tests**: _vs best_ and the paired-tests table's bootstrap p: paired bootstrap of the mean {ranked} "
        "against the first row (every seed, same test examples); McNemar p: exact binomial test of accuracy (which "
        "examples each model gets right) per seed pair; a deployment variant's p: McNemar against its own PyTorch "
        "predictions. _Notes_ say when a model predicts fewer classes than the benchmark has, or scores within its "
        "interval of a chance baseline."
    )


# ----- the models table ------------------------------------------------------------------------------------


def _quality_cell(row: ModelRow, column: MetricColumn) -> str:
    """Mean ± std over seeds, then the bootstrap interval when the catalogue's column has one."""
    digits = column.digits
    text = mean_std([row.score(r, column.name) for r in row.results], digits)
    ci = get(row.stats, "ci", column.name)
    if ci and math.isfinite(ci["low"]):
        text += f" [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"
    return text


def _vs_best_cell(row: ModelRow) -> str:
    versus = row.vs_best
    if versus == "leader":
        return "best"
    if not isinstance(versus, dict):
        return "n/a"
    boot = versus["paired_bootstrap"]
    return f"{'tied' if versus['tied'] else 'below'} (p {p_value(boot['p_value'], boot.get('p_floor'))})"


def _row_notes(row: ModelRow) -> str:
    notes = list(row.prediction_notes)
    first = row.completed[0].result if row.completed else (row.failed[0].result if row.failed else None)
    if first and first.budget_overrides:
        notes.append("overrides: " + ", ".join(f"{k}={v}" for k, v in first.budget_overrides.items()))
    if row.identical_seeds:
        notes.append(row.seeds_text)
    if any(r.result.trust_remote_code for r in row.completed + row.failed):
        notes.append("trust_remote_code")
    if row.failed:
        errors = {f"{r.result.error.type}: {r.result.error.message}" for r in row.failed if r.result.error}
        notes.append("failed: " + "; ".join(escape(e, 160) for e in sorted(errors)))
    notes += conditions.row_notes([r.result for r in row.completed])
    return "; ".join(notes)


def _status(row: ModelRow) -> str:
    status = "ok" if row.completed and not row.failed else ("partial" if row.completed else "failed")
    if len(row.completed) > 1 and not row.identical_seeds:
        status += f" ({len(row.completed)} seeds)"
    return status


def _models_row(rank: int, row: ModelRow, columns: list[MetricColumn]) -> list:
    results = row.results
    peak = max((get(r, "memory", "train", "rss_peak_bytes") or 0 for r in results), default=0)
    quality = [_quality_cell(row, column) if results else "n/a" for column in columns]
    return [
        rank if row.completed else "-", row.model, _status(row), *quality, _vs_best_cell(row),
        mean_std(get(row.stats, "ece") or [], 3),
        mean_std(get(row.stats, "brier") or [], 3),
        mean_std([get(r, "training", "train_seconds") for r in results], 1),
        mean_std([get(r, "training", "samples_per_second") for r in results], 1),
        mean_std([get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in results], 2),
        mean_std([get(r, "inference", "latency_batch1_end_to_end", "p95_ms") for r in results], 2),
        mean_std([get(r, "inference", "throughput_samples_per_s") for r in results], 1),
        f"{peak / 2**20:,.0f}" if peak else "n/a",
        count(get(results[0], "model_info", "parameters")) if results else "n/a",
        _row_notes(row),
    ]  # fmt: skip


def models(board: Leaderboard) -> Section:
    """Every model ranked: quality with intervals, the test against the best, calibration, cost and notes."""
    shown = board.table_columns
    columns = [
        "rank", "model", "status", *(escape(column.label) for column in shown), "vs best", "ECE", "Brier", "train s",
        "train samples/s", "p50 ms (b=1)", "p95 ms (b=1)", "eval samples/s", "peak RSS MiB", "params", "notes",
    ]  # fmt: skip
    notes = (
        "Quality cells: mean ± std over seeds, then [95% bootstrap CI of that mean over test examples "
        f"({board.n_boot:,} resamples; every seed kept on each resample)]; the std is the seed-to-seed spread. "
        "A model whose seeds gave identical predictions is shown as one run. _vs best_: paired bootstrap of mean "
        f"{_tested_text(board)} against the first row over every seed; _tied_ when p >= 0.05. ECE: top-label expected "
        "calibration error (15 bins); Brier: multi-class (0 best, 2 worst)."
        + (" Extra metrics (from evaluate modules, on the stored predictions): "
           + ", ".join(escape(c.label) for c in board.extra) + "; no interval." if board.extra else "")
    )
    rows = [_models_row(rank, row, shown) for rank, row in enumerate(board.rows, 1)]
    quality = len(shown) + 1
    groups = ["", "", "", *["quality"] * quality, "calibration", "calibration", *["cost"] * (len(columns) - quality - 6), ""]
    marks = [_mark(row) for row in board.rows]
    return Section("Models", [Table(columns, rows, notes=notes, groups=groups, marks=marks)])


def _tested_text(board: Leaderboard) -> str:
    """The metric of the paired test, and why when it is not the main one."""
    tested = tested_column(board.main)
    if tested is board.main:
        return escape(tested.label)
    return f"{escape(tested.label)} ({escape(board.main.label)}, the main metric, has no interval function)"


def _mark(row: ModelRow) -> str | None:
    """"best" for the leader, "tied" for a row the paired test cannot separate from it."""
    if row.vs_best == "leader":
        return "best"
    return "tied" if isinstance(row.vs_best, dict) and row.vs_best["tied"] else None


def settings(board: Leaderboard) -> Section | None:
    """What each model family actually used: its own settings and the budget fields it reads."""
    if not board.rows:
        return None
    rows = []
    for row in board.rows:
        run = (row.completed or row.failed)[0].result
        values = ", ".join(f"{k}={v}" for k, v in run.model_settings.items() if v is not None)
        used = run.budget_fields_used
        budget = budget_text(run.budget, used) if run.budget else "n/a"
        if "seed" in used or not used:
            budget += ", seed (per run)"
        rows.append([row.model, run.family or "?", escape(values) or "n/a", budget])
    return Section("Model settings", [Table(["model", "family", "settings", "budget fields it uses"], rows)])


def truncation(board: Leaderboard) -> Section | None:
    """The share of texts each model's tokenizer cut at max_length, overall and per group value (eval split)."""
    shown = [row for row in board.rows if row.results and row.results[0].truncation is not None]
    if not shown:
        return None
    group_values: dict[str, list[str]] = {}
    for row in shown:
        for column, shares in row.results[0].truncation.eval.by_group.items():
            group_values.setdefault(column, sorted(set(group_values.get(column, [])) | set(shares)))
    columns = ["model", "max_length", "train cut", f"{board.spec.eval_split} cut"]
    for column, values in group_values.items():
        columns += [f"{escape(column)}={escape(v)}" for v in values]
    rows = []
    for row in shown:
        t = row.results[0].truncation
        cells = [row.model, t.max_length if t.applies else "whole text", pct(t.train.share), pct(t.eval.share)]
        for column, values in group_values.items():
            cells += [pct(t.eval.by_group.get(column, {}).get(v)) if t.applies else "0.0%" for v in values]
        rows.append(cells)
    caption = (
        "Share of texts longer than the model's max_length in its own tokenizer's tokens (special tokens "
        "included): the model never sees the rest. TF-IDF reads every text whole. Per-group columns are of the "
        f"{board.spec.eval_split} split."
    )
    return Section("Truncation", [Table(columns, rows)], caption=caption)


# ----- expected validation performance ------------------------------------------------------------------------

def _value_text(value) -> str:
    """A trial's or a space's value as people read it (floats to 3 significant digits), not yet escaped."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={_value_text(v)}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return "one of (" + ", ".join(_value_text(v) for v in value) + ")"
    return str(value)


def _space_text(space: dict) -> str:
    return escape("; ".join(f"{k}: {_value_text(v)}" for k, v in space.items()), 300) or "n/a"


def _leader_line(ev: tuning.ExpectedValidation) -> str:
    """From which n the leader by expected best stops changing, or that it still changes at N."""
    if not any(study.curve for study in ev.models):
        return "No trial completed: there is no curve to compare."
    if not ev.comparable:
        return (f"The models were tuned on different metrics ({escape(', '.join(ev.metrics))}): their curves are "
                "not ranked against each other.")
    what, trials, at = f"The leader by expected best validation {ev.metric_label}", ev.trials, ev.leader_at
    settled = ev.settled_from()
    if trials == 1:
        return f"{what} after one trial is {at[0]} (one trial per model: no number of trials to compare)."
    if settled == 1:
        return f"{what} is {at[0]} at every n from 1 to {trials}: it does not change."
    if settled < trials:
        return (f"{what} stops changing at n = {settled}: {at[-1]} from n = {settled} to {trials} "
                f"({at[settled - 2]} at n = {settled - 1}).")
    return (f"{what} still changes at n = {trials}: {at[-1]} at n = {trials}, {at[-2]} at n = {trials - 1}; "
            "more trials could change it.")


def _digits(ev: tuning.ExpectedValidation) -> int:
    try:
        return metric_column(ev.metrics[0]).digits
    except ValueError:
        return 4


def _expected_table(ev: tuning.ExpectedValidation) -> Table:
    digits = _digits(ev)
    rows = []
    for n in range(1, ev.trials + 1):
        cells = []
        for study in ev.models:
            cells.append("n/a" if study.curve is None else
                         "{:.{d}f} ± {:.{d}f}".format(*study.curve.at(n), d=digits))
        rows.append([n, *cells, ev.leader_at[n - 1] if ev.comparable else "n/a"])
    columns = ["trials n", *(s.shown for s in ev.models), "leader"]
    notes = (f"Expected best validation {ev.metric_label} after n trials ± its standard deviation"
             + (f"; {tuning.NARROWED}: the model's entry narrowed the benchmark's search space (its space is below)."
                if any(s.narrowed for s in ev.models) else "."))
    return Table(columns, rows, align=["right", *["left"] * (len(columns) - 1)], notes=notes)


def _selected_table(ev: tuning.ExpectedValidation) -> Table:
    digits = _digits(ev)
    rows = []
    for study in ev.models:
        for seed in study.seeds:
            trial, record = seed.selected, seed.record
            values = escape(", ".join(f"{k}={_value_text(v)}" for k, v in trial.params.items())) if trial else ""
            rows.append([
                study.shown, seed.seed, "none" if trial is None else trial.number, values or "n/a",
                fmt(trial.validation_score if trial else None, digits),
                f"{len(seed.scores)} of {record.trials_planned}",
                f"narrowed: {_space_text(record.space)}" if record.narrowed else "the benchmark's",
            ])
    columns = ["model", "seed", "selected trial", "its values", f"validation {ev.metric_label}",
               "trials completed", "search space"]
    return Table(columns, rows, notes="The selected trial of each model and seed is the run the tables above score on test.")


def expected_validation(board: Leaderboard, figures: list[Figure] | None) -> Section | None:
    """Expected best validation score after n = 1..N trials per model (Dodge et al., 2019), its plot, the leader
    line and each model and seed's selected trial. None when no run was tuned, so untuned leaderboards are unchanged."""
    ev = board.expected_validation
    if ev is None:
        return None
    shared = next((s.record.space for m in ev.models for s in m.seeds if not s.record.narrowed), None)
    items = [
        f"**Validation set**: {'; '.join(escape(v) for v in ev.validation)}; trials are scored on it only, never on "
        f"the {escape(board.spec.eval_split)} split",
        f"**Budget**: {ev.trials} trial(s) per model and seed; sampler {'; '.join(escape(s) for s in ev.samplers)}; "
        f"selected on validation {ev.metric_label} ({'higher' if ev.direction == 'maximize' else 'lower'} is better)",
        *([f"**Search space**: {_space_text(shared)}"] if shared is not None else []),
    ]
    caption = (
        "Each model and seed ran the same number of trials of the same search, each trial scored on the validation "
        "set. After n trials: the expected best validation score of n trials drawn with replacement from a seed's "
        "completed trials, by the formula of Dodge et al., _Show Your Work_ (EMNLP 2019), averaged over the "
        "seeds; ± is the standard deviation of that best (the seeds' spread included). Where two models' curves "
        "cross, which one wins depends on the number of trials."
    )
    blocks = [BulletList(items), Paragraph(_leader_line(ev)), _expected_table(ev)]
    if figures is not None:
        blocks.append(Figure(EXPECTED_VALIDATION_FIGURE, f"expected best validation {ev.metric_label} after n trials"))
    blocks.append(_selected_table(ev))
    return Section("Expected validation performance", blocks, caption=caption)


# ----- cost --------------------------------------------------------------------------------------------------


def _cost_cell(row: ModelRow, *path, digits: int = 1, scale: float = 1.0) -> str:
    values = [get(r, *path) for r in row.results]
    return mean_std([None if v is None else v * scale for v in values], digits)


def _cost_row(row: ModelRow, cuda: bool) -> list[str]:
    mib = 1 / 2**20
    cells = [
        row.model,
        *(_cost_cell(row, "inference", "latency_batch1_end_to_end", f"p{p}_ms", digits=2) for p in (50, 90, 95, 99)),
        _cost_cell(row, "inference", "latency_batch1_model_only", "p50_ms", digits=2),
        _cost_cell(row, "inference", "throughput_samples_per_s"),
        _cost_cell(row, "training", "samples_per_second"),
        _cost_cell(row, "training", "tokens_per_second", digits=0),
        _cost_cell(row, "training", "mfu", scale=100.0),
        _cost_cell(row, "memory", "train", "rss_peak_bytes", digits=0, scale=mib),
        _cost_cell(row, "memory", "inference", "rss_peak_bytes", digits=0, scale=mib),
    ]
    if cuda:
        for phase in ("train", "inference"):
            allocated = _cost_cell(row, "memory", phase, "cuda_peak_allocated_bytes", digits=0, scale=mib)
            reserved = _cost_cell(row, "memory", phase, "cuda_peak_reserved_bytes", digits=0, scale=mib)
            cells.append(f"{allocated} / {reserved}")
    return cells + [
        count(get(row.results[0], "model_info", "parameters")),
        _cost_cell(row, "model_info", "size_on_disk_bytes", digits=1, scale=mib),
    ]


def _cost_caption(every: list) -> str:
    first = every[0]
    latency = get(first, "inference", "latency_batch1_end_to_end")
    threads = next(
        (t for r in every if (t := get(r, "device", "threads") or {}).get("torch_intra_op") is not None),
        get(first, "device", "threads") or {},
    )
    thread_text = ", ".join(
        f"{k}={v}" for k, v in (("torch intra-op", threads.get("torch_intra_op")), ("usable cores", threads.get("usable_cores")))
        if v is not None
    )
    shares = _share_text(every)
    return (
        f"Batch-1 latency over the same {get(latency, 'repetitions') or '?'} test texts for every model after "
        f"{get(latency, 'warmup') or '?'} untimed calls: end to end (raw text in, probabilities out, tokenisation "
        "included) and model-only (pre-tokenised forward pass; transformers only). Eval samples/s: the whole eval "
        f"split at batch {get(first, 'inference', 'eval_batch_size') or '?'}, sorted by length, after one "
        "untimed batch. Train real tokens/s counts unpadded tokens. MFU: 6 x non-embedding parameters x real "
        "tokens / train time / the card's dense bf16 peak FLOP/s, whatever the training precision (n/a on CPU or an "
        "unlisted GPU). Params: weights "
        "of a transformer, coefficients of a linear model. Peak RSS and CUDA memory are reset between training "
        "and inference; each model runs in its own process."
        + (f" Threads: {thread_text}." if thread_text else "")
        + (f" Each run's thread share: {shares}." if shares else "")
    )


def _share_text(results: list) -> str:
    """The threads each run had of the usable cores ("1 of 2 usable cores (--parallel 2)"); runs stored before
    thread shares were recorded say nothing."""
    seen = []
    for r in results:
        share = get(r, "device", "thread_share")
        if share is not None:
            text = (f"{get(share, 'threads')} of {get(share, 'usable_cores')} usable cores "
                    f"({escape(str(get(share, 'given_by')))})")
            seen += [text] if text not in seen else []
    return "; ".join(seen)


def cost(board: Leaderboard) -> Section | None:
    """The "Cost" table: latency percentiles, throughput, training speed, MFU, memory and size per model."""
    shown = [row for row in board.rows if row.results]
    if not shown:
        return None
    every = [r for row in shown for r in row.results]
    cuda = any(get(r, "memory", p, "cuda_peak_allocated_bytes") is not None for r in every for p in ("train", "inference"))
    columns = [
        "model", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p50 ms model-only", "eval samples/s",
        "train samples/s", "train real tokens/s", "MFU %", "peak RSS train MiB", "peak RSS inference MiB",
        *(["CUDA alloc/reserved train MiB", "CUDA alloc/reserved inference MiB"] if cuda else []),
        "params", "size on disk MiB",
    ]  # fmt: skip
    table = Table(columns, [_cost_row(row, cuda) for row in shown], groups=["", *["cost"] * (len(columns) - 1)])
    return Section("Cost", [table], caption=_cost_caption(every))


# ----- deployment variants ------------------------------------------------------------------------------------


def _latency_cell(latency) -> str:
    return " / ".join(fmt(get(latency, f"p{p}_ms"), 2) for p in (50, 95, 99))


def _mib(value, digits: int) -> str:
    return fmt(value / 2**20 if value else None, digits)


def _variant_rows(model: str, result) -> list[list[str]]:
    base, e2e = result.inference, result.inference.latency_batch1_end_to_end
    rows = [[
        f"{model} · pytorch", f"torch {result.precision or 'n/a'}", fmt(result.metrics.accuracy),
        fmt(result.metrics.f1_macro), "-", "-", "-", "-", _latency_cell(e2e),
        fmt(get(base, "latency_batch1_model_only", "p50_ms"), 2), fmt(base.throughput_samples_per_s, 1), "1.00x",
        "1.00x", _mib(get(result, "memory", "inference", "rss_peak_bytes"), 0),
        _mib(get(result, "model_info", "size_on_disk_bytes"), 1), "-",
    ]]
    for name, variant in result.deployment_variants.items():
        label = f"{model} · {name}"
        if variant.status != "completed":
            rows.append([label, variant.status, "n/a", "n/a", escape(variant.verdict(None), 300), *["n/a"] * 11])
            continue
        inference = variant.inference
        v_e2e = inference.latency_batch1_end_to_end
        ratio = v_e2e.p50_ms / e2e.p50_ms if v_e2e and e2e and e2e.p50_ms else None
        seconds = fmt(variant.export_seconds, 1) + (
            f" / {fmt(variant.quantize_seconds, 1)}" if variant.quantize_seconds is not None else "")
        rows.append([
            label, escape(variant.runtime or "n/a"), fmt(variant.accuracy), fmt(variant.f1_macro),
            variant.verdict(result.metrics.accuracy), f"{variant.paired_test.b}/{variant.paired_test.c}",
            pct(variant.agreement_with_pytorch), f"{variant.max_probability_difference:.1e}", _latency_cell(v_e2e),
            fmt(get(inference, "latency_batch1_model_only", "p50_ms"), 2), fmt(inference.throughput_samples_per_s, 1),
            "n/a" if ratio is None else f"{ratio:.2f}x",
            f"{inference.throughput_samples_per_s / base.throughput_samples_per_s:.2f}x",
            _mib(get(variant, "memory", "rss_peak_bytes"), 0), _mib(variant.size_on_disk_bytes, 1), seconds,
        ])
    return rows


def deployment_variants(board: Leaderboard) -> Section | None:
    """Each transformer's deployment variants as sub-rows of its PyTorch row (``model · onnx-int8``), with the
    accuracy each keeps (McNemar's exact test against its own PyTorch predictions) beside what it costs.

    None when no run of the board measured a variant, so earlier leaderboards are unchanged."""
    runs = [(row.model, row.results[0]) for row in board.rows if row.results and row.results[0].deployment_variants]
    if not runs:
        return None
    columns = ["model", "runtime", "accuracy", "macro-F1", "vs its PyTorch model", "McNemar b/c", "agreement",
               "max Δp", "p50 / p95 / p99 ms", "p50 ms model-only", "eval samples/s", "p50 vs PyTorch",
               "samples/s vs PyTorch", "peak RSS inference MiB", "file MiB", "export / quantize s"]
    caption = (
        "Each transformer served as trained (PyTorch, the harness's precision) and as its deployment variants "
        "(ONNX Runtime fp32 from `model.onnx`, int8 by dynamic quantization from `model-int8.onnx`), on the same "
        "test texts through the same tokenizer, lowest seed. _vs its PyTorch model_: McNemar's exact test of the "
        "variant's errors against its own PyTorch model's (b: only PyTorch right, c: only the variant right); "
        "_no significant loss_ when p >= 0.05. Agreement: share of texts given the PyTorch label; max Δp: the "
        "largest probability difference. Latency and throughput as in the Cost table, measured in the same process "
        "right after the PyTorch model; file MiB: the ONNX file alone (PyTorch: the whole saved folder)."
    )
    table = Table(columns, [cells for model, result in runs for cells in _variant_rows(model, result)])
    return Section("Deployment variants", [table], caption=caption)


# ----- per class --------------------------------------------------------------------------------------------


def per_class(board: Leaderboard) -> Section | None:
    names = board.spec.label_names
    rows = [
        [row.model, *(mean_std([r.metrics.per_class[n].f1 for r in row.results]) for n in names)]
        for row in board.rows
        if row.results
    ]
    if not rows:
        return None
    table = Table(["model", *[f"F1 {escape(n)}" for n in names]], rows, groups=["", *["per class"] * len(names)])
    return Section("Per-class F1", [table])


def per_class_detail(board: Leaderboard) -> Section | None:
    names = board.spec.label_names
    if not any(row.results for row in board.rows):
        return None
    rows = []
    for row in board.rows:
        for r in row.results[:1]:
            for k, name in enumerate(names):
                c = r.metrics.per_class[name]
                rows.append([row.model, escape(name), fmt(c.precision), fmt(c.recall), fmt(c.f1),
                             fmt(r.metrics.roc_auc_per_class[k]), c.support])
    columns = ["model", "class", "precision", "recall", "F1", "ROC-AUC (1-vs-rest)", "support"]
    return Section("Per-class precision, recall, F1 and ROC-AUC (first seed)", [Table(columns, rows)])


# ----- groups and transfer ----------------------------------------------------------------------------------


def _cell(cell: groups.Cell | None) -> str:
    return "n/a" if cell is None else interval(cell.point, cell.low, cell.high)


def per_group(spec: BenchmarkSpec, column: str, scored: list[groups.RunScores]) -> Section:
    """A model x value table of macro-F1 with intervals for one group column, and its heatmap."""
    values = groups.group_values(scored)
    counts = {v: max(s.cells[v].n for s in scored if v in s.cells) for v in values}
    columns = ["model", *[f"{escape(v)} (n={counts[v]})" for v in values], "mean over groups", "worst group"]
    rows = []
    for s in scored:
        points = [s.cells[v].point for v in values if v in s.cells]
        worst = min(values, key=lambda v: s.cells[v].point if v in s.cells else math.inf)
        rows.append([s.model, *[_cell(s.cells.get(v)) for v in values], f"{np.mean(points):.3f}",
                     f"{escape(worst)} ({s.cells[worst].point:.3f})"])
    seeds = sorted({s.seed for s in scored})
    caption = (
        f"Each model's run on the whole train split (seed {', '.join(map(str, seeds))}), scored separately on "
        f"each value of `{column}` in the {spec.eval_split} split. Brackets: 95% percentile bootstrap interval "
        "(1,000 resamples of the group's examples). Intervals that overlap do not separate two groups or models."
    )
    figure = Figure(groups.per_group_figure(column), f"macro-F1 per {column}")
    return Section(f"Macro-F1 per {escape(column)}", [Table(columns, rows), figure], caption=caption)


def _transfer_said(column: str, summary: dict[str, float]) -> str:
    said = []
    if math.isfinite(summary["in_group"]):
        said.append(f"in-{column} (diagonal) mean {summary['in_group']:.3f}")
    if math.isfinite(summary["zero_shot"]):
        said.append(f"zero-shot (off-diagonal) mean {summary['zero_shot']:.3f}")
    if math.isfinite(summary["gap"]):
        said.append(f"transfer gap {summary['gap']:.3f}")
    if "all" in summary:
        said.append(f"trained on all, mean over {column} {summary['all']:.3f}")
    return ("Summary: " + "; ".join(said) + ".") if said else ""


def _transfer_model(column: str, model: str, matrix: dict[str, groups.RunScores], values: list[str]) -> Section:
    rows = []
    for row in groups.row_order(matrix):
        s = matrix[row]
        points = [s.cells[v].point for v in values if v in s.cells]
        rows.append([escape(row), s.train_rows if s.train_rows is not None else "?",
                     *[_cell(s.cells.get(v)) for v in values], f"{np.mean(points):.3f}" if points else "n/a"])
    table = Table(["train / test", "train rows", *[escape(v) for v in values], "mean"], rows)
    summary = Paragraph(_transfer_said(column, groups.transfer_summary(matrix)))
    figure = Figure(groups.transfer_figure(column, model), f"{model} transfer matrix")
    return Section(model, [table, summary, figure], level=3)


def transfer(column: str, matrices: dict[str, dict[str, groups.RunScores]]) -> Section:
    """One train x test table, summary and heatmap per model trained on subsets of ``column``."""
    values = groups.transfer_values(matrices)
    caption = (
        f"Rows: what the model was trained on (`{groups.ALL_ROW}` = the whole train split; otherwise only the rows "
        f"of that `{column}`, from `--transfer-matrix {column}` or `--train-filter {column}=V`). Columns: the "
        f"{column} it is tested on. The framed diagonal is in-{column} training; off the diagonal is zero-shot "
        "transfer. Cells: macro-F1 [95% bootstrap interval]. Each row is one run (the lowest completed seed) under "
        "the same budget profile; `train rows` says how much data the row had, since one value alone is a smaller "
        "split."
    )
    parts = [_transfer_model(column, model, matrices[model], values) for model in sorted(matrices)]
    return Section(f"Cross-{escape(column)} transfer (train {escape(column)} x test {escape(column)})", parts,
                   caption=caption)


# ----- tests, plots, links ----------------------------------------------------------------------------------


def _paired_row(row: ModelRow) -> list:
    versus = row.vs_best
    boot, mcnemar = versus["paired_bootstrap"], versus["mcnemar"]
    return [
        row.model,
        f"{boot['diff']:+.4f} [{boot['low']:+.4f}, {boot['high']:+.4f}]",
        p_value(boot["p_value"], boot.get("p_floor")),
        "; ".join(f"{t['b']}/{t['c']}" for t in mcnemar),
        "; ".join(p_value(t["p_value"]) for t in mcnemar),
        "tied" if versus["tied"] else "below",
        versus["n"],
    ]


def paired_tests(board: Leaderboard) -> Section | None:
    """Each model against the best: paired bootstrap of the mean main metric (else macro-F1), McNemar per seed pair."""
    shown = [row for row in board.rows[1:] if isinstance(row.vs_best, dict)]
    if not shown:
        return None
    seeds = len(board.rows[0].predictions)
    caption = (
        f"Paired bootstrap ({board.n_boot:,} resamples of the same test examples, every seed of both models on each "
        f"resample) of the difference in mean {_tested_text(board)}; the smallest p it can show is about "
        f"{1 / (1 + board.n_boot):.0e}. McNemar: exact binomial test of the error rates for each seed pair (the i-th "
        f"seed of each model; the best model has {seeds} seed(s)), as 'only it right / only best right'. "
        "_tied_: bootstrap p >= 0.05, the data cannot separate it from the best model."
    )
    columns = ["model", f"Δ {escape(tested_column(board.main).label)} vs best [95% CI]", "p (paired bootstrap)",
               "McNemar b/c per seed pair",
               "p (McNemar, exact) per seed pair", "verdict", "examples"]
    table = Table(columns, [_paired_row(row) for row in shown])
    return Section("Paired tests against the best model (every seed)", [table], caption=caption)


def plots(figures: list[Figure] | None) -> Section | None:
    return Section("Plots", [Gallery(figures)]) if figures else None


def error_analysis(figures: list[Figure] | None) -> Section | None:
    """The link to errors.md, written beside the leaderboard whenever its files are (``figures`` not None)."""
    if figures is None:
        return None
    text = (
        "Most confident mistakes, error rate by input length and by group, and the examples on which models "
        f"disagree: [{ERRORS_FILE}]({ERRORS_FILE})."
    )
    return Section("Error analysis", [Paragraph(text)])


def invalid_runs(board: Leaderboard) -> Section | None:
    if not board.runs.invalid:
        return None
    caption = "These stored runs do not validate and are left out of every table; a rerun of the same command redoes them."
    items = [f"`{escape(path.parent.name)}/{escape(path.name)}`: {escape(reason, 300)}" for path, reason in board.runs.invalid]
    return Section("Runs that could not be read", [BulletList(items)], caption=caption)


def other_configurations(board: Leaderboard) -> Section | None:
    if not board.other_configurations:
        return None
    caption = ("Each has its own leaderboard; `textclf-bench report --benchmark "
               f"{board.spec.name} --configuration LABEL` rebuilds it.")
    items = [f"[`{c.label}`](../{c.label}/leaderboard.md): {c.describe()}" for c in board.other_configurations]
    return Section("Other configurations in this store", [BulletList(items)], caption=caption)
