"""The leaderboard's figures, built from stored predictions and results; report.py saves them as PNG.

Each function returns a matplotlib Figure (built without pyplot: no display or backend needed) or None when there is
nothing to draw (no model with a loss curve, no latency measured). Legends sit outside the axes
or where the data cannot be, so they never hide a point.
"""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from sklearn.metrics import roc_curve

from harness import stats
from harness.analysis import Predictions

DPI = 110


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _subplots(*args, figsize, layout=None, **kwargs):
    # Figures built without pyplot: no global backend, no figure registry to leak into, safe in a notebook.
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*args, **kwargs)


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes; the caller writes them atomically."""
    buffer = io.BytesIO()
    # A legend added with add_artist outside the axes counts towards the tight box only when named here.
    extra = [*fig.get_default_bbox_extra_artists(), *fig.findobj(Legend)]
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", bbox_extra_artists=extra)
    return buffer.getvalue()


def pareto_front(latency: list[float], quality: list[float]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower latency and higher quality)."""
    order = sorted(range(len(latency)), key=lambda i: (latency[i], -quality[i]))
    front, best = [], -math.inf
    for i in order:
        if quality[i] > best:
            front.append(i)
            best = quality[i]
    return front


def quality_vs_latency(points: list[dict], quality_label: str = "macro-F1") -> Figure | None:
    """Quality against batch-1 latency, the Pareto front marked, marker area proportional to memory.

    Args:
        points: one dict per model with ``model``, ``quality``, ``low``/``high`` (its interval, drawn
            as the error bar; may be nan), ``latency_ms`` and ``memory_mib`` (may be None).
        quality_label: axis label of the quality.
    """
    points = [p for p in points if p.get("latency_ms") and p.get("quality") is not None]
    if not points:
        return None
    fig, ax = _subplots(figsize=(8.5, 5.2))
    colors = _colors([p["model"] for p in points])
    memory = [p.get("memory_mib") or 0.0 for p in points]
    top = max(memory) or 1.0
    sizes = [60 + 900 * m / top for m in memory]
    latency = [p["latency_ms"] for p in points]
    quality = [p["quality"] for p in points]
    front = pareto_front(latency, quality)
    for p, size in zip(points, sizes, strict=True):
        low, high = p.get("low", math.nan), p.get("high", math.nan)
        if math.isfinite(low) and math.isfinite(high):
            ax.errorbar(
                p["latency_ms"],
                p["quality"],
                yerr=[[p["quality"] - low], [high - p["quality"]]],
                fmt="none",
                ecolor="0.35",
                elinewidth=1,
                capsize=4,
                zorder=2,
            )
        ax.scatter(
            p["latency_ms"],
            p["quality"],
            s=size,
            color=colors[p["model"]],
            alpha=0.75,
            edgecolor="black",
            linewidth=0.8,
            zorder=3,
            label=p["model"],
        )
    if len(front) > 1:
        fx = [latency[i] for i in front]
        fy = [quality[i] for i in front]
        ax.plot(
            fx, fy, "--", color="0.2", linewidth=1.2, drawstyle="steps-post", zorder=1, label="Pareto front"
        )
    for i in front:
        ax.scatter(latency[i], quality[i], marker="*", s=90, color="black", zorder=4)
    log_x = max(latency) / min(latency) > 8
    if log_x:
        ax.set_xscale("log")
        # Plain numbers at 1-2-5 steps read faster than powers of ten.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.18)  # room for the names written to the right of the last points
    ax.set_xlabel("latency, batch 1, p50 (ms per text" + (", log scale)" if log_x else ")"))
    ax.set_ylabel(f"{quality_label} (error bar: 95% bootstrap CI)")
    ax.set_title(
        f"{quality_label} against latency\n(marker area ∝ peak inference memory; ★ on the Pareto front)"
    )
    ax.grid(alpha=0.3)
    _pad(ax, quality)
    _label_points(ax, [p["model"] for p in points], latency, quality, sizes)
    # Legend markers of one fixed size: the model legend names colours, the second one reads sizes.
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=8,
            markerfacecolor=colors[p["model"]],
            markeredgecolor="black",
        )
        for p in points
    ]
    labels = [p["model"] for p in points]
    if len(front) > 1:
        handles.append(Line2D([], [], linestyle="--", color="0.2"))
        labels.append("Pareto front")
    first = ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="model"
    )
    ax.add_artist(first)
    references = sorted({round(x) for x in (top, top / 4) if x >= 1}, reverse=True)
    if references:
        size_handles = [
            ax.scatter([], [], s=60 + 900 * m / top, color="0.85", edgecolor="black") for m in references
        ]
        ax.legend(
            size_handles,
            [f"{m:,.0f} MiB" for m in references],
            loc="lower left",
            bbox_to_anchor=(1.02, 0.0),
            fontsize=8,
            labelspacing=2.2,
            borderpad=1.2,
            handletextpad=1.8,
            title="inference memory",
            scatterpoints=1,
        )
    return fig


def _label_points(
    ax, names: list[str], xs: list[float], ys: list[float], sizes: list[float], fontsize: int = 8
) -> None:
    """Write each name beside its marker where it overlaps no other name or marker (greedy, in points)."""
    fig = ax.get_figure()
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling before reading positions
    to_points = 72.0 / fig.dpi
    centers = [
        tuple(v * to_points for v in ax.transData.transform((x, y))) for x, y in zip(xs, ys, strict=True)
    ]
    radii = [math.sqrt(s) / 2 for s in sizes]
    taken = [(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centers, radii, strict=True)]
    height = fontsize * 1.2

    def free(box) -> bool:
        return all(box[2] <= o[0] or box[0] >= o[2] or box[3] <= o[1] or box[1] >= o[3] for o in taken)

    order = sorted(range(len(names)), key=lambda i: -ys[i])
    for i in order:
        (cx, cy), r = centers[i], radii[i]
        width = 0.6 * fontsize * len(names[i])
        candidates = []
        for lift in (0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.5, -4.5):
            dy = lift * height - height / 2
            candidates += [(r + 3, dy), (-r - 3 - width, dy)]
        choice = next(
            (
                k
                for k, (dx, dy) in enumerate(candidates)
                if free((cx + dx, cy + dy, cx + dx + width, cy + dy + height))
            ),
            0,
        )
        dx, dy = candidates[choice]
        taken.append((cx + dx, cy + dy, cx + dx + width, cy + dy + height))
        ax.annotate(
            names[i],
            (xs[i], ys[i]),
            xytext=(dx, dy),
            textcoords="offset points",
            fontsize=fontsize,
            ha="left",
            va="bottom",
            # A name moved away from its marker keeps a thin line back to it, so it is never misread.
            arrowprops=None
            if choice == 0
            else {"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "shrinkB": r},
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
        )


def _pad(ax, values: list[float]) -> None:
    low, high = min(values), max(values)
    span = max(high - low, 0.02)
    ax.set_ylim(max(0.0, low - 0.6 * span), min(1.0, high + 0.6 * span) + 0.01)


def per_class_f1(
    models: list[str], label_names: list[str], mean: np.ndarray, std: np.ndarray | None
) -> Figure:
    """Grouped bars: per-class F1 (x: class, one bar per model); error bars are the std over seeds.

    Args:
        models: model names, in leaderboard order.
        label_names: class names.
        mean: (models, classes) mean F1 over seeds.
        std: the same shape, std over seeds, or None with one seed each.
    """
    n_models, n_classes = mean.shape
    if n_models * n_classes > 30:
        return _per_class_heatmap(models, label_names, mean)
    fig, ax = _subplots(figsize=(max(7.0, 1.0 + n_classes * (0.35 * n_models + 0.5)), 4.6))
    width = 0.8 / n_models
    x = np.arange(n_classes)
    colors = _colors(models)
    for j, model in enumerate(models):
        yerr = None if std is None or not np.any(std[j] > 0) else std[j]
        bars = ax.bar(
            x - 0.4 + width * (j + 0.5),
            mean[j],
            width,
            yerr=yerr,
            capsize=3,
            color=colors[model],
            label=model,
        )
        if n_models * n_classes <= 24:
            # Bars of similar height differ by less than the eye can read on a 0-1 axis: print the values.
            ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=7, rotation=90 if n_models > 2 else 0)
    ax.set_xticks(
        x, label_names, rotation=30 if n_classes > 6 else 0, ha="right" if n_classes > 6 else "center"
    )
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("F1 (0–1)" + (", error bar: std over seeds" if std is not None else ""))
    ax.set_xlabel("class")
    ax.set_title("Per-class F1 by model")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _per_class_heatmap(models: list[str], label_names: list[str], mean: np.ndarray) -> Figure:
    # Past ~30 bars a grouped bar chart is a strip no one can read: a model x class table of colours is.
    n_models, n_classes = mean.shape
    fig, ax = _subplots(
        figsize=(min(18.0, 2.5 + 0.75 * n_classes), 1.6 + 0.42 * n_models), layout="constrained"
    )
    low = float(np.floor(np.nanmin(mean) * 20) / 20)
    image = ax.imshow(mean, cmap="viridis", vmin=low, vmax=1.0, aspect="auto")
    for i in range(n_models):
        for j in range(n_classes):
            shade = (mean[i, j] - low) / max(1e-9, 1.0 - low)
            ax.text(
                j,
                i,
                f"{mean[i, j]:.3f}",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if shade > 0.55 else "white",
            )
    ax.set_xticks(range(n_classes), label_names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n_models), models, fontsize=8)
    ax.set_xlabel("class")
    ax.set_title("Per-class F1 by model (mean over seeds)")
    fig.colorbar(image, ax=ax, label="F1 (0–1)", shrink=0.9)
    return fig


def roc_curves(first: dict[str, Predictions], label_names: list[str]) -> Figure | None:
    """ROC curves of every model overlaid: one panel for binary tasks, one per class (one-vs-rest) otherwise."""
    if not first:
        return None
    k = len(label_names)
    panels = [1] if k == 2 else list(range(k))
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    size = (5.8, 5.6) if len(panels) == 1 else (4.0 * cols, 3.9 * rows)
    fig, axes = _subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    colors = _colors(list(first))
    # Up to four panels each carry their own legend with the per-class AUC; past that one shared
    # legend (macro AUC) keeps the panels readable.
    shared = len(panels) > 4
    for ax, cls in zip(axes.flat, panels, strict=False):
        for name, preds in first.items():
            positive = preds.labels == cls
            if positive.all() or not positive.any():
                continue
            fpr, tpr, _ = roc_curve(positive, preds.probs[:, cls])
            auc = stats.roc_auc(positive.astype(int), np.c_[1 - preds.probs[:, cls], preds.probs[:, cls]])
            ax.plot(fpr, tpr, color=colors[name], linewidth=1.4, label=f"{name} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="0.5", linewidth=1, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(
            f"positive class: {label_names[cls]}" if k == 2 else f"{label_names[cls]} vs rest", fontsize=10
        )
        ax.grid(alpha=0.3)
        if not shared:
            # A ROC curve lives above the diagonal: the lower right corner is free for the legend.
            ax.legend(loc="lower right", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if shared:
        handles = [Line2D([], [], color=colors[name], linewidth=1.4) for name in first]
        labels = [f"{name} (macro AUC {stats.roc_auc(p.labels, p.probs):.3f})" for name, p in first.items()]
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize=9)
    fig.suptitle("ROC curves" + (" (one-vs-rest)" if k > 2 else ""), fontsize=12)
    return fig


def confusion_grid(first: dict[str, Predictions], label_names: list[str]) -> Figure | None:
    """One confusion matrix per model, coloured by row-normalised rate (recall), counts written in."""
    if not first:
        return None
    k = len(label_names)
    n = len(first)
    cols = n if n <= 3 else (2 if n == 4 else 3)
    rows = math.ceil(n / cols)
    cell = 0.45 + 0.42 * k
    fig, axes = _subplots(
        rows,
        cols,
        figsize=(max(4.0, cell) * cols + 1.2, max(3.8, cell) * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for ax, (name, preds) in zip(axes.flat, first.items(), strict=False):
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (preds.labels, preds.predicted), 1)
        totals = matrix.sum(axis=1, keepdims=True)
        rate = np.divide(matrix, totals, out=np.zeros((k, k)), where=totals > 0)
        image = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:,}\n{100 * rate[i, j]:.0f}%",
                        ha="center",
                        va="center",
                        fontsize=7 if k > 5 else 8,
                        color="white" if rate[i, j] > 0.6 else "black",
                    )
        ax.set_xticks(
            range(k), label_names, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center", fontsize=8
        )
        ax.set_yticks(range(k), label_names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name} (seed {preds.seed})", fontsize=10)
    for ax in list(axes.flat)[len(first) :]:
        ax.set_visible(False)
    fig.suptitle("Confusion matrices (count and % of the true class)", fontsize=12)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.7, label="fraction of the true class")
    return fig


def loss_curves(curves: dict[str, list[list[dict]]]) -> Figure | None:
    """Training loss against examples seen; one colour per model, one line per seed.

    Args:
        curves: model -> one loss curve per seed, each a list of ``{"step", "examples", "loss"}``.
    """
    curves = {m: [c for c in cs if c] for m, cs in curves.items()}
    curves = {m: cs for m, cs in curves.items() if cs}
    if not curves:
        return None
    fig, ax = _subplots(figsize=(8.5, 4.6))
    colors = _colors(list(curves))
    for model, per_seed in curves.items():
        for i, curve in enumerate(per_seed):
            x = [point.get("examples", point.get("step")) for point in curve]
            y = [point["loss"] for point in curve]
            ax.plot(
                x,
                y,
                color=colors[model],
                linewidth=1.4 if i == 0 else 0.8,
                alpha=1.0 if i == 0 else 0.5,
                label=model if i == 0 else None,
            )
    ax.set_xlabel("training examples seen")
    ax.set_ylabel("training loss (cross-entropy, nats)")
    ax.set_title(
        "Training loss"
        + (" (faint lines: further seeds)" if any(len(c) > 1 for c in curves.values()) else "")
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def reliability_diagram(first: dict[str, Predictions], n_bins: int = 15) -> Figure | None:
    """Top-label reliability: accuracy against confidence per bin, with the share of examples per bin below."""
    if not first:
        return None
    fig, (top, bottom) = _subplots(
        2, 1, figsize=(8.5, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.2], "hspace": 0.08}
    )
    colors = _colors(list(first))
    k = next(iter(first.values())).probs.shape[1]
    for name, preds in first.items():
        bins = stats.reliability_bins(preds.labels, preds.probs, n_bins)
        ece = stats.expected_calibration_error(preds.labels, preds.probs, n_bins)
        filled = bins["count"] > 0
        top.plot(
            bins["confidence"][filled],
            bins["accuracy"][filled],
            "o-",
            color=colors[name],
            markersize=4,
            linewidth=1.3,
            label=f"{name} (ECE {ece:.3f})",
        )
        share = bins["count"][filled] / bins["count"].sum()
        bottom.plot(bins["confidence"][filled], share, "o-", color=colors[name], markersize=3, linewidth=1.0)
    top.plot([0, 1], [0, 1], ":", color="0.4", label="perfect calibration")
    left = max(0.0, 1.0 / k - 0.05)
    top.set_xlim(left, 1.0)
    top.set_ylim(max(0.0, left - 0.1), 1.01)
    top.set_ylabel("accuracy in bin")
    top.set_title(f"Reliability diagram (top-label, {n_bins} equal-width bins)")
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    bottom.set_yscale("log")
    bottom.set_ylabel("share of examples\n(log scale)")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.grid(alpha=0.3)
    return fig
