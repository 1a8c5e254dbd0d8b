"""Leaderboard markdown rebuilt from the results store alone (so reports rebuild without training)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from tabulate import tabulate

from harness import analysis, groups
from harness.config import BenchmarkSpec
from harness.store import ResultsStore, atomic_write_bytes, atomic_write_text


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _mean_std(values: list[float | None], digits: int = 4) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return _fmt(vals[0], digits)
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"


def _mib(value) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f}"


def _get(result: dict, *path, default=None):
    node = result
    for key in path:
        if not isinstance(node, dict) or key not in node or node[key] is None:
            return default
        node = node[key]
    return node


def collect(store: ResultsStore, benchmark: str) -> dict[str, list[dict]]:
    """Results grouped by model; each list holds one result per seed."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for run_dir, result in store.iter_results(benchmark):
        result["_run_dir"] = str(run_dir)
        by_model[result.get("model", run_dir.parent.name)].append(result)
    return dict(by_model)


def model_rows(by_model: dict[str, list[dict]]) -> list[dict]:
    """One summary row per model (mean over completed seeds), sorted by macro-F1, failures last."""
    rows = []
    for model, results in by_model.items():
        done = [r for r in results if r.get("status") == "completed"]
        failed = [r for r in results if r.get("status") != "completed"]
        row = {"model": model, "completed": done, "failed": failed}
        if done:
            row["f1_macro"] = float(np.mean([r["metrics"]["f1_macro"] for r in done]))
        rows.append(row)
    rows.sort(key=lambda r: (-r.get("f1_macro", -1.0), r["model"]))
    return rows


def leaderboard_table(rows: list[dict]) -> str:
    header = [
        "rank", "model", "status", "accuracy", "macro-F1", "ROC-AUC", "vs best", "ECE", "Brier", "train s", "train samples/s",
        "p50 ms (b=1)", "p95 ms (b=1)", "eval samples/s", "peak RSS MiB", "params (M)", "notes",
    ]
    table = []
    for rank, row in enumerate(rows, 1):
        done, failed = row["completed"], row["failed"]
        notes = []
        if done and done[0].get("budget_overrides"):
            notes.append("overrides: " + ", ".join(f"{k}={v}" for k, v in done[0]["budget_overrides"].items()))
        if any(r.get("trust_remote_code") for r in done + failed):
            notes.append("trust_remote_code")
        if failed:
            errors = {f"{r.get('error', {}).get('type', 'error')}: {r.get('error', {}).get('message', '')}"[:120] for r in failed}
            notes.append("failed: " + "; ".join(sorted(errors)))
        status = "ok" if done and not failed else ("partial" if done else "failed")
        if len(done) > 1:
            status += f" ({len(done)} seeds)"
        first = done[0] if done else {}
        params = _get(first, "model_info", "parameters")
        peak = max(
            (_get(r, "memory", "train", "rss_peak_bytes", default=0) for r in done),
            default=None,
        )
        table.append(
            [
                rank if done else "-",
                row["model"],
                status,
                _quality_cell(row, "accuracy"),
                _quality_cell(row, "f1_macro"),
                _quality_cell(row, "roc_auc"),
                _vs_best_cell(row),
                _mean_std(_get(row, "stats", "ece", default=[]), 3),
                _mean_std(_get(row, "stats", "brier", default=[]), 3),
                _mean_std([_get(r, "training", "train_seconds") for r in done], 1),
                _mean_std([_get(r, "training", "samples_per_second") for r in done], 1),
                _mean_std([_get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in done], 2),
                _mean_std([_get(r, "inference", "latency_batch1_end_to_end", "p95_ms") for r in done], 2),
                _mean_std([_get(r, "inference", "throughput_samples_per_s") for r in done], 1),
                _mib(peak) if done else "n/a",
                _fmt(params / 1e6, 1) if params else "n/a",
                "; ".join(notes),
            ]
        )
    return tabulate(table, headers=header, tablefmt="github", disable_numparse=True)


def per_class_table(rows: list[dict], label_names: list[str]) -> str:
    table = []
    for row in rows:
        if not row["completed"]:
            continue
        cells = [row["model"]]
        for name in label_names:
            cells.append(_mean_std([r["metrics"]["per_class"][name]["f1"] for r in row["completed"]]))
        table.append(cells)
    return tabulate(table, headers=["model", *[f"F1 {n}" for n in label_names]], tablefmt="github", disable_numparse=True)


def per_class_detail(rows: list[dict], label_names: list[str]) -> str:
    table = []
    for row in rows:
        for r in row["completed"][:1]:
            for name in label_names:
                c = r["metrics"]["per_class"][name]
                roc = r["metrics"]["roc_auc_per_class"][label_names.index(name)]
                table.append([row["model"], name, _fmt(c["precision"]), _fmt(c["recall"]), _fmt(c["f1"]), _fmt(roc), c["support"]])
    return tabulate(
        table, headers=["model", "class", "precision", "recall", "F1", "ROC-AUC (1-vs-rest)", "support"],
        tablefmt="github", disable_numparse=True,
    )


def cost_section(rows: list[dict]) -> list[str]:
    """The "Cost" table: latency percentiles, throughput, training speed, MFU, memory and size per model.

    CUDA memory columns appear only when some run recorded them (runs on a GPU).
    """
    done_rows = [row for row in rows if row["completed"]]
    if not done_rows:
        return []

    def cell(row: dict, *path, digits: int = 1, scale: float = 1.0) -> str:
        values = [_get(r, *path) for r in row["completed"]]
        return _mean_std([None if v is None else v * scale for v in values], digits)

    every = [r for row in done_rows for r in row["completed"]]
    cuda = any(_get(r, "memory", phase, "cuda_peak_allocated_bytes") is not None for r in every for phase in ("train", "inference"))
    header = [
        "model", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "p50 ms model-only", "eval samples/s",
        "train samples/s", "train real tokens/s", "MFU %", "peak RSS train MiB", "peak RSS inference MiB",
    ]
    if cuda:
        header += ["CUDA alloc/reserved train MiB", "CUDA alloc/reserved inference MiB"]
    header += ["params (M)", "size on disk MiB"]
    table = []
    for row in done_rows:
        cells = [
            row["model"],
            *(cell(row, "inference", "latency_batch1_end_to_end", f"p{p}_ms", digits=2) for p in (50, 90, 95, 99)),
            cell(row, "inference", "latency_batch1_model_only", "p50_ms", digits=2),
            cell(row, "inference", "throughput_samples_per_s"),
            cell(row, "training", "samples_per_second"),
            cell(row, "training", "tokens_per_second", digits=0),
            cell(row, "training", "mfu", scale=100.0),
            cell(row, "memory", "train", "rss_peak_bytes", digits=0, scale=1 / 2**20),
            cell(row, "memory", "inference", "rss_peak_bytes", digits=0, scale=1 / 2**20),
        ]
        if cuda:
            for phase in ("train", "inference"):
                allocated = cell(row, "memory", phase, "cuda_peak_allocated_bytes", digits=0, scale=1 / 2**20)
                reserved = cell(row, "memory", phase, "cuda_peak_reserved_bytes", digits=0, scale=1 / 2**20)
                cells.append(f"{allocated} / {reserved}")
        cells += [
            cell(row, "model_info", "parameters", digits=1, scale=1e-6),
            cell(row, "model_info", "size_on_disk_bytes", digits=1, scale=1 / 2**20),
        ]
        table.append(cells)
    first = every[0]
    latency = _get(first, "inference", "latency_batch1_end_to_end", default={})
    # A TF-IDF run never loads torch: take the thread settings from a run that reports torch's.
    threads = next(
        (t for r in every if (t := _get(r, "device", "threads", default={})).get("torch_intra_op") is not None),
        _get(first, "device", "threads", default={}),
    )
    thread_text = ", ".join(
        f"{k}={v}" for k, v in (("torch intra-op", threads.get("torch_intra_op")), ("usable cores", threads.get("usable_cores")))
        if v is not None
    )
    caption = (
        f"Batch-1 latency over the same {latency.get('repetitions', '?')} test texts for every model after "
        f"{latency.get('warmup', '?')} untimed calls: end to end (raw text in, probabilities out, tokenisation "
        "included) and model-only (pre-tokenised forward pass; transformers only). Eval samples/s: the whole eval "
        f"split at batch {_get(first, 'inference', 'eval_batch_size', default='?')}, sorted by length, after one "
        "untimed batch. Train real tokens/s counts unpadded tokens. MFU: 6 x non-embedding parameters x real "
        "tokens / train time / the GPU's dense peak FLOP/s (n/a on CPU or an unlisted GPU). Peak RSS and CUDA "
        "memory are reset between training and inference; each model runs in its own process."
        + (f" Threads: {thread_text}." if thread_text else "")
    )
    return ["", "## Cost", "", caption, "", tabulate(table, headers=header, tablefmt="github", disable_numparse=True)]


def header_lines(spec: BenchmarkSpec, rows: list[dict]) -> list[str]:
    done = [r for row in rows for r in row["completed"]]
    first = done[0] if done else {}
    devices = sorted({_get(r, "device", "device_name", default="?") for r in done})
    budgets = sorted({str(r.get("budget_profile")) for r in done})
    data = first.get("data", {})
    lines = [
        f"# Leaderboard: {spec.name}",
        "",
        spec.description.strip(),
        "",
        f"- **Device**: {', '.join(devices) or 'n/a'} (latency and throughput are only comparable on the same device)",
        f"- **Budget profile**: {', '.join(budgets) or 'n/a'}"
        + (f" - {_budget_text(first.get('budget', {}))}" if first else ""),
        f"- **Data**: {data.get('train_rows', '?')} train rows, {data.get('eval_rows', '?')} rows of the "
        f"'{data.get('eval_split', spec.eval_split)}' split ({data.get('kind', '?')} source)",
    ]
    if len(budgets) > 1 or len(devices) > 1:
        lines.append("- **Warning**: rows come from different budgets or devices; compare with care")
    commits = sorted({_get(r, "environment", "git_commit", default="?") for r in done})
    short = sorted({c[:12] + (" (uncommitted changes)" if c.endswith("-dirty") else "") for c in commits})
    lines.append(f"- **Harness commit(s)**: {', '.join(short) or 'n/a'}")
    lines.append(
        "- Sorted by macro-F1 (mean ± std over seeds when several). Latency: batch 1, raw text in, probabilities out, "
        "after warm-up. Peak RSS: the model's own process during training."
    )
    return lines


def _budget_text(budget: dict) -> str:
    keys = ("train_examples", "epochs", "max_steps", "max_seconds", "max_length", "batch_size", "learning_rate", "seed")
    return ", ".join(f"{k}={budget[k]}" for k in keys if budget.get(k) is not None)


# --- Uncertainty, tie test, plots and error analysis (all rebuilt from the stored predictions) ---

PLOTS_DIR = "plots"
ERRORS_FILE = "errors.md"
N_BOOT = 1000


def _p(value) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _quality_cell(row: dict, key: str) -> str:
    """Mean ± std over seeds, then the first seed's 95% bootstrap interval in brackets."""
    text = _mean_std([r["metrics"][key] for r in row["completed"]])
    ci = _get(row, "stats", "ci", key)
    if ci and np.isfinite(ci["low"]):
        text += f" [{ci['low']:.4f}, {ci['high']:.4f}]"
    return text


def _vs_best_cell(row: dict) -> str:
    versus = row.get("vs_best")
    if versus == "leader":
        return "best"
    if not versus:
        return "n/a"
    p = _p(versus["paired_bootstrap"]["p_value"])
    return f"{'tied' if versus['tied'] else 'below'} (p{p if p.startswith('<') else '=' + p})"


def attach_statistics(rows: list[dict], label_names: list[str], n_boot: int = N_BOOT) -> dict:
    """Put bootstrap intervals, ECE/Brier and the test against the leader into each row.

    Returns:
        Each model's first-seed predictions (``analysis.Predictions``), in leaderboard order.
    """
    first = {}
    for row in rows:
        runs = analysis.load_model_predictions(row["completed"], len(label_names))
        if runs:
            row["stats"] = analysis.model_statistics(runs, n_boot)
            row["seed_runs"] = runs
            first[row["model"]] = runs[0]
    leader = rows[0] if rows and rows[0].get("stats") else None
    if leader is not None:
        leader["vs_best"] = "leader"
        for row in rows[1:]:
            if row.get("stats"):
                row["vs_best"] = analysis.compare_to_leader(first[leader["model"]], first[row["model"]], n_boot)
    return first


def paired_tests_table(rows: list[dict]) -> str:
    table = []
    for row in rows[1:]:
        versus = row.get("vs_best")
        if not isinstance(versus, dict):
            continue
        boot, test = versus["paired_bootstrap"], versus["mcnemar"]
        table.append(
            [
                row["model"],
                f"{boot['diff']:+.4f} [{boot['low']:+.4f}, {boot['high']:+.4f}]",
                _p(boot["p_value"]),
                f"{test['b']} / {test['c']}",
                f"{_p(test['p_value'])} ({test['method']})",
                "tied" if versus["tied"] else "below",
                versus["n"],
            ]
        )
    return tabulate(
        table,
        headers=[
            "model", "Δ macro-F1 vs best [95% CI]", "p (paired bootstrap)", "McNemar: only it right / only best right",
            "p (McNemar)", "verdict", "examples",
        ],
        tablefmt="github",
        disable_numparse=True,
    )


def _latency_points(rows: list[dict]) -> list[dict]:
    points = []
    for row in rows:
        done = row["completed"]
        latency = [_get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in done]
        latency = [v for v in latency if v]
        if not done or not latency:
            continue
        memory = [
            _get(r, "memory", "inference", "cuda_peak_allocated_bytes")
            or _get(r, "memory", "inference", "rss_peak_bytes")
            for r in done
        ]
        memory = [m for m in memory if m]
        ci = _get(row, "stats", "ci", "f1_macro", default={})
        # The point is the mean over seeds; the interval is the first seed's, moved to sit around it.
        shift = row["f1_macro"] - ci.get("point", row["f1_macro"])
        points.append(
            {
                "model": row["model"],
                "quality": row["f1_macro"],
                "low": ci.get("low", float("nan")) + shift,
                "high": ci.get("high", float("nan")) + shift,
                "latency_ms": float(np.mean(latency)),
                "memory_mib": float(np.max(memory)) / 2**20 if memory else None,
            }
        )
    return points


def write_figures(out_dir: Path, rows: list[dict], first: dict, label_names: list[str]) -> list[tuple[str, str]]:
    """Draw every figure there is data for into ``<out_dir>/plots``; returns (caption, relative path) pairs."""
    from harness import plots

    done = [row for row in rows if row["completed"]]
    per_class = None
    if done:
        f1 = [[[r["metrics"]["per_class"][c]["f1"] for c in label_names] for r in row["completed"]] for row in done]
        several = any(len(seeds) > 1 for seeds in f1)
        per_class = plots.per_class_f1(
            [row["model"] for row in done],
            label_names,
            np.array([np.mean(s, axis=0) for s in f1]),
            np.array([np.std(s, axis=0, ddof=1) if len(s) > 1 else np.zeros(len(label_names)) for s in f1])
            if several
            else None,
        )
    figures = {
        "quality_vs_latency": ("Macro-F1 against batch-1 latency, Pareto front and memory", plots.quality_vs_latency(_latency_points(rows))),
        "per_class_f1": ("Per-class F1", per_class),
        "roc_curves": ("ROC curves", plots.roc_curves(first, label_names)),
        "confusion_matrices": ("Confusion matrices", plots.confusion_grid(first, label_names)),
        "loss_curves": (
            "Training loss",
            plots.loss_curves({row["model"]: [_get(r, "training", "loss_curve", default=[]) for r in row["completed"]] for row in done}),
        ),
        "reliability": ("Reliability diagram", plots.reliability_diagram(first)),
    }
    written = []
    for name, (caption, fig) in figures.items():
        path = out_dir / PLOTS_DIR / f"{name}.png"
        if fig is None:
            path.unlink(missing_ok=True)  # a figure from an earlier build would no longer match the store
            continue
        atomic_write_bytes(path, plots.to_png(fig))
        written.append((caption, f"{PLOTS_DIR}/{name}.png"))
    return written


def evidence_sections(store: ResultsStore, spec: BenchmarkSpec, rows: list[dict], first: dict, out_dir: Path) -> list[str]:
    """Paired tests, figures and the error analysis file, as leaderboard lines (writes the files they link)."""
    lines = []
    if sum(1 for row in rows if row.get("stats")) > 1:
        lines += [
            "",
            "## Paired tests against the best model (first seed)",
            "",
            "Paired bootstrap over the same test examples (1000 resamples) of the macro-F1 difference, and McNemar's "
            "test of the error rates. _tied_: p >= 0.05, the data cannot separate it from the best model.",
            "",
            paired_tests_table(rows),
        ]
    figures = write_figures(out_dir, rows, first, spec.label_names)
    if figures:
        lines += ["", "## Plots", ""]
        for caption, relative in figures:
            lines += [f"### {caption}", "", f"![{caption}]({relative})", ""]
    atomic_write_text(
        out_dir / ERRORS_FILE,
        analysis.error_report(first, store.read_eval_texts(spec.name), spec.label_names, spec.name),
    )
    lines += [
        "",
        "## Error analysis",
        "",
        f"Most confident mistakes, error rate by input length and by group, and the examples on which models "
        f"disagree: [{ERRORS_FILE}]({ERRORS_FILE}).",
    ]
    return lines


def write_report(store: ResultsStore, spec: BenchmarkSpec) -> Path:
    """Write ``<results>/<benchmark>/leaderboard.md`` from the stored results and return its path."""
    rows = model_rows(collect(store, spec.name))
    out_dir = store.benchmark_dir(spec.name)
    first = attach_statistics(rows, spec.label_names)
    lines = header_lines(spec, rows)
    lines += ["", "## Models", "", leaderboard_table(rows)]
    lines += [
        "",
        "Quality cells: mean ± std over seeds, then [95% bootstrap CI] over test examples (first seed, "
        f"{N_BOOT} resamples). _vs best_: paired bootstrap of macro-F1 against the first row; _tied_ when p >= 0.05. "
        "ECE: top-label expected calibration error (15 bins); Brier: multi-class (0 best, 2 worst).",
    ]
    lines += cost_section(rows)
    if any(row["completed"] for row in rows):
        lines += ["", "## Per-class F1", "", per_class_table(rows, spec.label_names)]
        lines += ["", "## Per-class precision, recall, F1 and ROC-AUC (first seed)", "", per_class_detail(rows, spec.label_names)]
    lines += groups.report_sections(store, spec, out_dir, [row["model"] for row in rows])
    lines += evidence_sections(store, spec, rows, first, out_dir)
    path = out_dir / "leaderboard.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
