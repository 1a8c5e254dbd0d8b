"""Leaderboard markdown rebuilt from the results store alone (so reports rebuild without training)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from tabulate import tabulate

from harness import groups
from harness.config import BenchmarkSpec
from harness.store import ResultsStore, atomic_write_text


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
        "rank", "model", "status", "accuracy", "macro-F1", "ROC-AUC", "train s", "train samples/s",
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
                _mean_std([r["metrics"]["accuracy"] for r in done]),
                _mean_std([r["metrics"]["f1_macro"] for r in done]),
                _mean_std([r["metrics"]["roc_auc"] for r in done]),
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
    lines.append(f"- **Harness commit(s)**: {', '.join(c[:12] for c in commits) or 'n/a'}")
    lines.append(
        "- Sorted by macro-F1 (mean ± std over seeds when several). Latency: batch 1, raw text in, probabilities out, "
        "after warm-up. Peak RSS: the model's own process during training."
    )
    return lines


def _budget_text(budget: dict) -> str:
    keys = ("train_examples", "epochs", "max_steps", "max_seconds", "max_length", "batch_size", "learning_rate", "seed")
    return ", ".join(f"{k}={budget[k]}" for k in keys if budget.get(k) is not None)


def write_report(store: ResultsStore, spec: BenchmarkSpec) -> Path:
    """Write ``<results>/<benchmark>/leaderboard.md`` from the stored results and return its path."""
    rows = model_rows(collect(store, spec.name))
    out_dir = store.benchmark_dir(spec.name)
    lines = header_lines(spec, rows)
    lines += ["", "## Models", "", leaderboard_table(rows)]
    if any(row["completed"] for row in rows):
        lines += ["", "## Per-class F1", "", per_class_table(rows, spec.label_names)]
        lines += ["", "## Per-class precision, recall, F1 and ROC-AUC (first seed)", "", per_class_detail(rows, spec.label_names)]
    lines += groups.report_sections(store, spec, out_dir, [row["model"] for row in rows])
    path = out_dir / "leaderboard.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
