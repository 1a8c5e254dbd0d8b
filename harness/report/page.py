"""What the leaderboard's page adds to its sections, drawn from the :class:`~harness.report.board.Leaderboard`.

Interactive versions of the figures (keyed by the figure's path, as ``harness.report.html`` looks them up) and
the error browser's rows. Each chart is plain data in no library's terms:

- ``{"kind": "scatter", "title", "x_label", "y_label", "log_x", "lower_is_better", "points": [{"name", "x",
  "y", "low", "high"}], "variants": [{"name", "parent", "x", "y", ...}]}``: quality against one cost; the page
  marks the Pareto front of the models and links each deployment variant to its model's point;
- ``{"kind": "heatmap", "title", "x": [...], "y": [...], "z": [[...]], "zmin", "zmax", "digits"}``;
- ``{"kind": "lines", "title", "x_label", "y_label", "series": [{"name", "x", "y"}], "diagonal"}``.

Strings here are raw (labels and texts as written): the page's script shows them as text, never as markup.
"""

from __future__ import annotations

import math

import numpy as np

from harness.report import groups
from harness.report.board import Leaderboard, ModelRow
from harness.report.records import get

PLOTS = groups.PLOTS_DIR
# Rows of the error browser embedded in a page; a larger test set is cut to its first rows, and the page says so.
MAX_EXAMPLES = 2000
MAX_TEXT = 1000  # characters of one text shown


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _costs(row: ModelRow) -> dict[str, float | None]:
    results = row.results
    memory = [
        get(r, "memory", "inference", "cuda_peak_allocated_bytes") or get(r, "memory", "train", "rss_peak_bytes")
        for r in results
    ]
    memory = [m for m in memory if m]
    return {
        "latency": _mean(get(r, "inference", "latency_batch1_end_to_end", "p50_ms") for r in results),
        "throughput": _mean(get(r, "inference", "throughput_samples_per_s") for r in results),
        "train": _mean(get(r, "training", "train_seconds") for r in results),
        "memory": max(memory) / 2**20 if memory else None,
    }


COSTS = (
    # key, axis title, log axis, lower is better
    ("latency", "batch-1 latency p50 (ms)", True, True),
    ("throughput", "eval throughput (samples/s)", True, False),
    ("train", "training time (s)", True, True),
    ("memory", "peak memory (MiB: CUDA allocated, else training RSS)", False, True),
)


def quality_vs_cost(board: Leaderboard) -> list[dict]:
    """Macro-F1 (with its bootstrap interval) against each cost, one scatter per cost that any model has."""
    done = [row for row in board.rows if row.results and row.f1_macro is not None]
    costs = {row.model: _costs(row) for row in done}
    charts = []
    for key, label, log_x, lower in COSTS:
        points = []
        for row in done:
            x = costs[row.model][key]
            if x is None or x <= 0:
                continue
            ci = get(row.stats, "ci", "f1_macro") or {}
            points.append({"name": row.model, "x": x, "y": row.f1_macro, "low": ci.get("low"), "high": ci.get("high"),
                           "costs": costs[row.model]})
        if points:
            charts.append({"kind": "scatter", "title": f"Macro-F1 against {label}", "x_label": label,
                           "y_label": "macro-F1", "log_x": log_x, "lower_is_better": lower, "points": points,
                           "variants": variant_points(done, key, {p["name"] for p in points})})
    return charts


# What a deployment variant measured of each cost (its training is its model's: no point of its own there).
_VARIANT_COSTS = {
    "latency": ("inference", "latency_batch1_end_to_end", "p50_ms"),
    "throughput": ("inference", "throughput_samples_per_s"),
}  # memory: a variant's is its inference RSS, the models' points their training's: not one axis


def variant_points(rows: list[ModelRow], key: str, drawn: set[str]) -> list[dict]:
    """Each completed deployment variant (lowest seed, as the Deployment variants table) as a point of its own,
    ``parent`` naming the model whose point it is linked to; only for costs a variant measures itself and only
    where its model's point is drawn. They stay off the Pareto front: they are ways to serve a model, not models.
    """
    path = _VARIANT_COSTS.get(key)
    out: list[dict] = []
    for row in rows:
        if path is None or row.model not in drawn:
            continue
        for name, variant in row.results[0].deployment_variants.items():
            x = get(variant, *path)
            if variant.status != "completed" or variant.f1_macro is None or not x or x <= 0:
                continue
            out.append({"name": f"{row.model} · {name}", "parent": row.model, "variant": name,
                        "x": float(x), "y": float(variant.f1_macro),
                        "accuracy": variant.accuracy, "p_value": get(variant, "paired_test", "p_value")})
    return out


def per_class(board: Leaderboard) -> list[dict]:
    names = board.spec.label_names
    done = [row for row in board.rows if row.results]
    if not done:
        return []
    z = [[float(np.mean([r.metrics.per_class[n].f1 for r in row.results])) for n in names] for row in done]
    return [{"kind": "heatmap", "title": "Per-class F1 (mean over seeds)", "x": list(names),
             "y": [row.model for row in done], "z": z, "zmin": 0.0, "zmax": 1.0, "digits": 3}]


def confusion(board: Leaderboard) -> list[dict]:
    """One confusion matrix per model (first seed): counts, coloured by the share of the true class."""
    names = board.spec.label_names
    k = len(names)
    out = []
    for model, preds in board.first_predictions().items():
        counts = np.zeros((k, k), dtype=int)
        np.add.at(counts, (preds.labels, preds.predicted), 1)
        out.append({"kind": "heatmap", "title": f"{model}: confusion matrix (rows true, columns predicted)",
                    "x": list(names), "y": list(names), "z": counts.tolist(), "digits": 0, "reverse_y": True})
    return out


def reliability(board: Leaderboard, bins: int = 10) -> list[dict]:
    series = []
    edges = np.linspace(0, 1, bins + 1)
    for model, preds in board.first_predictions().items():
        conf = preds.confidence
        right = preds.predicted == preds.labels
        which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
        x, y = [], []
        for b in range(bins):
            inside = which == b
            if inside.any():
                x.append(float(conf[inside].mean()))
                y.append(float(right[inside].mean()))
        series.append({"name": model, "x": x, "y": y})
    if not series:
        return []
    return [{"kind": "lines", "title": "Reliability (first seed; 10 confidence bins)", "x_label": "mean confidence",
             "y_label": "accuracy", "series": series, "diagonal": True}]


def group_charts(board: Leaderboard) -> dict[str, list[dict]]:
    """Heatmaps of the per-group tables and transfer matrices, keyed by their figures' paths."""
    out = {}
    for column, scored in board.group_tables.items():
        values = groups.group_values(scored)
        z = [[s.cells[v].point if v in s.cells else None for v in values] for s in scored]
        out[groups.per_group_figure(column)] = [
            {"kind": "heatmap", "title": f"macro-F1 per {column}", "x": values, "y": [s.model for s in scored],
             "z": z, "zmin": 0.0, "zmax": 1.0, "digits": 3}
        ]
    for column, matrices in board.transfer.items():
        values = groups.transfer_values(matrices)
        for model, matrix in matrices.items():
            order = groups.row_order(matrix)
            z = [[matrix[r].cells[v].point if v in matrix[r].cells else None for v in values] for r in order]
            out[groups.transfer_figure(column, model)] = [
                {"kind": "heatmap", "title": f"{model}: train {column} (rows) x test {column} (columns)",
                 "x": values, "y": order, "z": z, "zmin": 0.0, "zmax": 1.0, "digits": 3, "reverse_y": True}
            ]
    return out


def expected_validation(board: Leaderboard) -> list[dict]:
    """Expected best validation score against the number of trials, each model's ± one std as a band."""
    ev = board.expected_validation
    if ev is None:
        return []
    n = list(range(1, ev.trials + 1))
    series = [
        {"name": s.shown, "x": n, "y": list(s.curve.expected),
         "low": [m - d for m, d in zip(s.curve.expected, s.curve.std, strict=True)],
         "high": [m + d for m, d in zip(s.curve.expected, s.curve.std, strict=True)]}
        for s in ev.models if s.curve is not None
    ]
    if not series:
        return []
    best = "lowest" if ev.direction == "minimize" else "best"
    return [{"kind": "lines", "title": f"Expected {best} validation {ev.metric_label} after n trials (band: ± one std)",
             "x_label": "hyper-parameter trials n", "y_label": f"expected {best} validation {ev.metric_label}",
             "series": series, "diagonal": False}]


def charts(board: Leaderboard) -> dict[str, list[dict]]:
    """Every chart of the page by the path of the figure it stands for."""
    out = {
        f"{PLOTS}/quality_vs_latency.png": quality_vs_cost(board),
        f"{PLOTS}/per_class_f1.png": per_class(board),
        f"{PLOTS}/confusion_matrices.png": confusion(board),
        f"{PLOTS}/reliability.png": reliability(board),
        **group_charts(board),
        f"{PLOTS}/expected_validation.png": expected_validation(board),
    }
    return {path: found for path, found in out.items() if found}


def error_browser(board: Leaderboard, limit: int = MAX_EXAMPLES) -> dict | None:
    """Each test example (the first ``limit``) with its true label and every model's first-seed prediction."""
    first = board.first_predictions()
    if not first:
        return None
    models = list(first)
    base = first[models[0]]
    ids = [int(i) for i in base.ids]
    texts = {}
    if board.eval_texts is not None:
        texts = dict(zip(board.eval_texts["id"].astype(int), board.eval_texts["text"].astype(str), strict=False))
    shown = ids[:limit]
    predicted, confidence = [], []
    for model in models:
        preds = first[model]
        where = {int(i): k for k, i in enumerate(preds.ids)}
        predicted.append([int(preds.predicted[where[i]]) if i in where else -1 for i in shown])
        confidence.append([round(float(preds.confidence[where[i]]), 4) if i in where else None for i in shown])
    return {
        "labels": list(board.spec.label_names),
        "models": models,
        "ids": shown,
        "truth": [int(v) for v in base.labels[: len(shown)]],
        "texts": [texts[i][:MAX_TEXT] if i in texts else None for i in shown],
        "predicted": predicted,
        "confidence": confidence,
        "total": len(ids),
        "has_texts": bool(texts),
        "max_text": MAX_TEXT,
    }
