"""The leaderboard's figures, built from stored predictions and results; report.py saves them as PNG.

Each function returns a matplotlib Figure (built without pyplot: no display or backend needed) or None when there is
nothing to draw (no model with a loss curve, no latency measured). Legends sit outside the axes
or where the data cannot be, so they never hide a point. Model names, class names and every other user string go
through :func:`~harness.core.escape.figure_text` on their way into a figure, so each is drawn as written.
"""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from sklearn.metrics import roc_curve

from harness.core.escape import figure_text
from harness.metrics import stats
from harness.report.analysis import Predictions

DPI = 110


def _colors(names: list[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _subplots(*args, figsize, layout=None, **kwargs):
    # Figures built without pyplot: no global backend, no figure registry to leak into, safe in a notebook.
    # An Agg canvas of their own gives a renderer, so text can be measured before it is placed.
    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
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

    Every marker, error bar and name is drawn inside the axes, and no name covers another: the axes grow to
    hold the markers and the whole interval, and each name goes where its measured box is free.

    Args:
        points: one dict per model with ``model``, ``quality``, ``low``/``high`` (its interval, drawn
            as the error bar; may be nan), ``latency_ms`` and ``memory_mib`` (may be None); a deployment
            variant's point also has ``parent``, its model's name, and is linked to that model's point.
        quality_label: axis label of the quality.
    """
    points = [p for p in points if p.get("latency_ms") and p.get("quality") is not None]
    if not points:
        return None
    fig, ax = _subplots(figsize=(8.5, 5.2), layout="constrained")
    colors = _colors([p["model"] for p in points])
    memory = [p.get("memory_mib") or 0.0 for p in points]
    top = max(memory) or 1.0
    sizes = [_memory_area(m, top) for m in memory]
    latency = [p["latency_ms"] for p in points]
    quality = [p["quality"] for p in points]
    front = pareto_front(latency, quality)
    names = [figure_text(p["model"]) for p in points]
    _draw_models(ax, points, names, colors, sizes)
    _link_variants(ax, points, colors)
    _draw_front(ax, latency, quality, front)
    _latency_axes(ax, latency, quality_label)
    lows = [p.get("low", math.nan) for p in points]
    highs = [p.get("high", math.nan) for p in points]
    _pad(ax, [v for v in [*quality, *lows, *highs] if math.isfinite(v)])
    _model_legend(ax, points, names, colors, with_front=len(front) > 1)
    _memory_legend(ax, top)
    _settle(fig, [ax])
    _label_points(ax, names, latency, quality, sizes)
    return fig


def _draw_models(ax, points: list[dict], names: list[str], colors: dict[str, tuple], sizes: list[float]) -> None:
    """One marker per model (``names`` as drawn), its area by memory, and its interval as an error bar above it."""
    for p, name, size in zip(points, names, sizes, strict=True):
        ax.scatter(
            p["latency_ms"],
            p["quality"],
            s=size,
            color=colors[p["model"]],
            alpha=0.45,
            edgecolor="black",
            linewidth=0.8,
            zorder=3,
            label=name,
        )
        low, high = p.get("low", math.nan), p.get("high", math.nan)
        if math.isfinite(low) and math.isfinite(high):
            # Above the marker, not behind it: a large, opaque disc used to hide the interval it sits on.
            ax.errorbar(
                p["latency_ms"],
                p["quality"],
                yerr=[[max(0.0, p["quality"] - low)], [max(0.0, high - p["quality"])]],
                fmt="none",
                ecolor="0.15",
                elinewidth=1.2,
                capsize=5,
                capthick=1.2,
                zorder=4,
            )


def _link_variants(ax, points: list[dict], colors: dict[str, tuple]) -> None:
    """A deployment variant (``parent``: its model) is linked to its model's point by a dotted line."""
    where = {p["model"]: (p["latency_ms"], p["quality"]) for p in points}
    for p in points:
        if p.get("parent") in where:
            (x0, y0), x1, y1 = where[p["parent"]], p["latency_ms"], p["quality"]
            ax.plot([x0, x1], [y0, y1], ":", color=colors[p["parent"]], linewidth=1.2, zorder=2)


def _draw_front(ax, latency: list[float], quality: list[float], front: list[int]) -> None:
    """The Pareto front as a dashed staircase (when it holds two models or more) and a star on each of its models."""
    if len(front) > 1:
        fx = [latency[i] for i in front]
        fy = [quality[i] for i in front]
        ax.plot(
            fx, fy, "--", color="0.2", linewidth=1.2, drawstyle="steps-post", zorder=1, label="Pareto front"
        )
    for i in front:
        ax.scatter(latency[i], quality[i], marker="*", s=70, color="black", zorder=5)


def _latency_axes(ax, latency: list[float], quality_label: str) -> None:
    """Latency on a log scale when it spans more than a factor of 8; the labels, title and grid."""
    log_x = max(latency) / min(latency) > 8
    if log_x:
        ax.set_xscale("log")
        # Plain numbers at 1-2-5 steps read faster than powers of ten.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12)
    ax.set_xlabel("latency, batch 1, p50 (ms per text" + (", log scale)" if log_x else ")"))
    ax.set_ylabel(f"{quality_label} (error bar: 95% bootstrap CI)")
    ax.set_title(
        f"{quality_label} against latency\n(marker area ∝ peak inference memory; ★ on the Pareto front)"
    )
    ax.grid(alpha=0.3)


def _model_legend(ax, points: list[dict], names: list[str], colors: dict[str, tuple], with_front: bool) -> None:
    """The models' colours (markers of one fixed size), outside the axes at the top right."""
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
    labels = list(names)
    if with_front:
        handles.append(Line2D([], [], linestyle="--", color="0.2"))
        labels.append("Pareto front")
    first = ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, title="model"
    )
    ax.add_artist(first)
    # add_artist clips it to the axes, which keeps it out of the layout (and so out of the figure), though it
    # lies outside the axes.
    first.set_clip_on(False)


def _memory_legend(ax, top: float) -> None:
    """How marker area reads as memory: the largest model's memory and a quarter of it, bottom right outside."""
    references = sorted({round(x) for x in (top, top / 4) if x >= 1}, reverse=True)
    if not references:
        return
    size_handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=math.sqrt(_memory_area(m, top)),
            markerfacecolor="0.85",
            markeredgecolor="black",
        )
        for m in references
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
    )


def _memory_area(memory_mib: float, top: float) -> float:
    return 60 + 900 * memory_mib / top


def _settle(fig: Figure, axes: list) -> None:
    """Fix the layout and widen each axes until every marker lies whole inside it, then freeze the layout.

    Markers are sized in points, limits in data: autoscaling keeps the centres in view, not the discs, and
    a name can only be placed against a layout that no longer moves.
    """
    for _ in range(3):
        fig.draw_without_rendering()
        if not any([_fit_markers(ax) for ax in axes]):
            break
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def _fit_markers(ax, pad_px: float = 3.0) -> bool:
    """Widen the limits so every scatter marker's disc lies inside the axes; True when they changed."""
    centers, radii = [], []
    for collection in ax.collections:
        if not isinstance(collection, PathCollection):
            continue
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        sizes = collection.get_sizes()
        if not len(offsets) or not len(sizes):
            continue
        centers.append(ax.transData.transform(offsets))
        radii.append(np.broadcast_to(np.sqrt(sizes) / 2 * ax.figure.dpi / 72.0 + pad_px, len(offsets)))
    if not centers:
        return False
    xy, r = np.concatenate(centers), np.concatenate(radii)
    box = ax.get_window_extent()
    changed = False
    for axis, low_edge, high_edge, column in ((ax.xaxis, box.x0, box.x1, 0), (ax.yaxis, box.y0, box.y1, 1)):
        below = max(0.0, float(np.max(low_edge - (xy[:, column] - r))))
        above = max(0.0, float(np.max(xy[:, column] + r - high_edge)))
        if below == 0 and above == 0:
            continue
        # Widen in the scale's own coordinates (log10 on a log axis), so the markers' spacing is kept.
        scale = axis.get_transform()
        lo, hi = scale.transform(np.array(axis.get_view_interval(), dtype=float))
        per_px = (hi - lo) / (high_edge - low_edge)
        lo, hi = lo - 1.1 * below * per_px, hi + 1.1 * above * per_px
        new = scale.inverted().transform(np.array([lo, hi]))
        (ax.set_xlim if column == 0 else ax.set_ylim)(*new)
        changed = True
    return changed


def _label_points(
    ax, names: list[str], xs: list[float], ys: list[float], sizes: list[float], fontsize: int = 8
) -> None:
    """Write each name (already through figure_text) beside its marker, inside the axes, where its measured box
    covers no other name.

    Names are placed from the highest marker down (``_LabelLayout`` chooses each box). A name moved off its
    marker keeps a thin line back to it.
    """
    fig = ax.get_figure()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72.0
    centers = ax.transData.transform(np.c_[xs, ys])
    radii = [math.sqrt(s) / 2 * px for s in sizes]
    layout = _LabelLayout(ax.get_window_extent(), centers, radii, _label_obstacles(ax, centers, radii, px), 3 * px)
    for i in sorted(range(len(names)), key=lambda i: -ys[i]):
        center, r = centers[i], radii[i]
        text = ax.annotate(names[i], (xs[i], ys[i]), fontsize=fontsize, ha="left", va="bottom")
        extent = text.get_window_extent(renderer)
        text.remove()
        box, leader = layout.place(i, extent.width + 2 * px, extent.height + 2 * px)
        ax.annotate(
            names[i],
            (xs[i], ys[i]),
            # The text sits 1 pt inside its measured box on every side (the white background's padding).
            xytext=((box[0] - center[0] + px) / px, (box[1] - center[1] + px) / px),
            textcoords="offset points",
            fontsize=fontsize,
            ha="left",
            va="bottom",
            zorder=6,
            arrowprops=None
            if leader is None
            else {"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "shrinkA": 0, "shrinkB": r / px},
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


Box = tuple[float, float, float, float]


def _label_obstacles(ax, centers: np.ndarray, radii: list[float], px: float) -> list[tuple[Box, float]]:
    """What a name should not cover, as boxes in display pixels with a weight: the markers (in the order of
    ``centers``, first), the front line, error-bar caps and error bars (covering one hides data)."""
    obstacles: list[tuple[Box, float]] = []
    for (cx, cy), r in zip(centers, radii, strict=True):
        obstacles.append(((cx - r, cy - r, cx + r, cy + r), 1.0))
    for line in ax.get_lines():
        data = line.get_xydata()
        if len(data) == 0 or not np.isfinite(data).all():
            continue
        points = ax.transData.transform(data)
        # The front line as thin boxes; a line of one point is an error-bar cap, which must stay in view.
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
            obstacles.append(((min(x0, x1) - 2, min(y0, y1) - 2, max(x0, x1) + 2, max(y0, y1) + 2), 0.3))
        if len(points) == 1:
            (x0, y0), half = points[0], 6 * px
            obstacles.append(((x0 - half, y0 - 2, x0 + half, y0 + 2), 20.0))
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            for segment in collection.get_segments():
                if len(segment):
                    (x0, y0), (x1, y1) = ax.transData.transform(np.asarray(segment)[[0, -1]])
                    obstacles.append(((min(x0, x1) - 2, min(y0, y1), max(x0, x1) + 2, max(y0, y1)), 20.0))
    return obstacles


class _LabelLayout:
    """Chooses each name's box, one name after another, against the names and leader lines placed so far.

    Candidates are tried nearest first. Each is scored by what it covers: other names (never, while a free
    place exists), error bars, markers and the front line; a name nearer another marker than its own, and a
    leader line through a name, another leader, a marker or an error bar, count against it too. The first free
    candidate is taken, else the least covering one.
    """

    def __init__(self, frame, centers: np.ndarray, radii: list[float], obstacles: list[tuple[Box, float]],
                 gap: float):
        self.frame, self.centers, self.radii, self.obstacles, self.gap = frame, centers, radii, obstacles, gap
        self.placed: list[Box] = []
        self.leaders: list[tuple[np.ndarray, np.ndarray]] = []

    def place(self, i: int, width: float, height: float) -> tuple[Box, tuple[np.ndarray, np.ndarray] | None]:
        """The box (and leader line, if it stands off) for marker ``i``'s name of this size; kept as placed."""
        center, r, frame = self.centers[i], self.radii[i], self.frame
        best, best_score = None, math.inf
        for k, (dx, dy) in enumerate(_label_candidates(r + self.gap, width, height)):
            box = (center[0] + dx, center[1] + dy, center[0] + dx + width, center[1] + dy + height)
            if box[0] < frame.x0 or box[2] > frame.x1 or box[1] < frame.y0 or box[3] > frame.y1:
                continue
            attached = k < 4
            leader = None if attached else (center, np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]))
            score = self._score(i, box, leader) + k  # nearer candidates first among equals
            if score < best_score:
                best, best_score = (box, leader), score
            if score == k:
                break
        if best is None:
            # No candidate fits the axes (a name longer than the plot is wide): keep it inside, on the marker.
            x0 = min(max(center[0] + r + self.gap, frame.x0), frame.x1 - width)
            y0 = min(max(center[1] - height / 2, frame.y0), frame.y1 - height)
            best = ((x0, y0, x0 + width, y0 + height), None)
        box, leader = best
        self.placed.append(box)
        if leader is not None:
            self.leaders.append(leader)
        return box, leader

    def _score(self, i: int, box: Box, leader: tuple[np.ndarray, np.ndarray] | None) -> float:
        """What a candidate box for marker ``i``'s name covers, weighted; 0 when it covers nothing."""
        center, r, obstacles = self.centers[i], self.radii[i], self.obstacles
        score = 1e6 * sum(_overlap(box, other) for other in self.placed)
        score += sum(w * _overlap(box, o) for j, (o, w) in enumerate(obstacles) if j != i)
        if leader is not None:
            # A leader line through another name, or across another leader, is misread as that one's;
            # one along an error bar or through a marker reads as part of it.
            start = leader[0] + (r + self.gap) * (leader[1] - leader[0]) / max(
                1e-9, float(np.hypot(*(leader[1] - leader[0])))
            )
            score += 1e4 * sum(_crosses_box(start, leader[1], other) for other in self.placed)
            score += 1e4 * sum(_segments_cross(*leader, *other) for other in self.leaders)
            score += 1e3 * sum(
                _crosses_box(start, leader[1], o)
                for j, (o, w) in enumerate(obstacles)
                if j != i and w >= 1.0
            )
        # A name nearer another marker than its own is read as that one's.
        own = _gap(box, center) - r
        score += 1e3 * sum(
            _gap(box, c) - rr < own
            for j, (c, rr) in enumerate(zip(self.centers, self.radii, strict=True))
            if j != i
        )
        return score


def _label_candidates(reach: float, width: float, height: float) -> list[tuple[float, float]]:
    """Offsets (lower-left corner, pixels from the marker's centre) of a name's box, nearest first.

    The first four touch the marker (right, left, above, below); the rest stand off it and get a leader line.
    """
    attached = [
        (reach, -height / 2),
        (-reach - width, -height / 2),
        (-width / 2, reach),
        (-width / 2, -reach - height),
    ]
    around = []
    for step in (1, 2, 3, 4, 5, 6, 8, 10):
        lift = step * height
        around += [
            (reach, lift - height / 2),
            (reach, -lift - height / 2),
            (-reach - width, lift - height / 2),
            (-reach - width, -lift - height / 2),
            (-width / 2, reach + lift),
            (-width / 2, -reach - height - lift),
            (reach, reach + lift - height),
            (-reach - width, reach + lift - height),
            (reach, -reach - lift),
            (-reach - width, -reach - lift),
        ]
    return attached + sorted(
        around, key=lambda offset: math.hypot(offset[0] + width / 2, offset[1] + height / 2)
    )


def _gap(box: tuple[float, float, float, float], point: np.ndarray) -> float:
    """Distance from a point to the nearest point of a box (0 inside it)."""
    return math.hypot(
        max(box[0] - point[0], 0.0, point[0] - box[2]), max(box[1] - point[1], 0.0, point[1] - box[3])
    )


def _crosses_box(a: np.ndarray, b: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    t = np.linspace(0.0, 1.0, 25)[:, None]
    points = a + t * (b - a)
    return bool(
        np.any(
            (points[:, 0] > box[0])
            & (points[:, 0] < box[2])
            & (points[:, 1] > box[1])
            & (points[:, 1] < box[3])
        )
    )


def _segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    def side(p, q, r) -> float:
        return float((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0]))

    return side(a, b, c) * side(a, b, d) < 0 and side(c, d, a) * side(c, d, b) < 0


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _pad(ax, values: list[float]) -> None:
    # Limits from the points and their whole intervals, so no error bar runs off the axes.
    low, high = min(values), max(values)
    span = max(high - low, 0.02)
    ax.set_ylim(max(0.0, low - 0.15 * span), min(1.0, high + 0.15 * span) + 0.01)


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
    fig, ax = _subplots(
        figsize=(max(7.0, 1.0 + n_classes * (0.35 * n_models + 0.5)), 4.6), layout="constrained"
    )
    width = 0.8 / n_models
    x = np.arange(n_classes)
    colors = _colors(models)
    for j, model in enumerate(models):
        # F1 lives in [0, 1]: a bar of mean ± std is cut there rather than drawn past the axis.
        yerr = (
            None
            if std is None or not np.any(std[j] > 0)
            else np.vstack([np.minimum(std[j], mean[j]), np.minimum(std[j], 1.0 - mean[j])])
        )
        bars = ax.bar(
            x - 0.4 + width * (j + 0.5),
            mean[j],
            width,
            yerr=yerr,
            capsize=3,
            color=colors[model],
            label=figure_text(model),
        )
        if n_models * n_classes <= 24:
            # Bars of similar height differ by less than the eye can read on a 0-1 axis: print the values.
            ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=7, rotation=90 if n_models > 2 else 0)
    ax.set_xticks(
        x,
        [figure_text(n) for n in label_names],
        rotation=30 if n_classes > 6 else 0,
        ha="right" if n_classes > 6 else "center",
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
    ax.set_xticks(range(n_classes), [figure_text(n) for n in label_names], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n_models), [figure_text(m) for m in models], fontsize=8)
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
            ax.plot(fpr, tpr, color=colors[name], linewidth=1.4, label=f"{figure_text(name)} (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="0.5", linewidth=1, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        cls_name = figure_text(label_names[cls])
        ax.set_title(f"positive class: {cls_name}" if k == 2 else f"{cls_name} vs rest", fontsize=10)
        ax.grid(alpha=0.3)
        if not shared:
            # A ROC curve lives above the diagonal: the lower right corner is free for the legend.
            ax.legend(loc="lower right", fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if shared:
        handles = [Line2D([], [], color=colors[name], linewidth=1.4) for name in first]
        labels = [
            f"{figure_text(name)} (macro AUC {stats.roc_auc(p.labels, p.probs):.3f})" for name, p in first.items()
        ]
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
    ticks = [figure_text(n) for n in label_names]
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
        ax.set_xticks(range(k), ticks, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center", fontsize=8)
        ax.set_yticks(range(k), ticks, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{figure_text(name)} (seed {preds.seed})", fontsize=10)
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
    fig, ax = _subplots(figsize=(8.5, 4.6), layout="constrained")
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
                label=figure_text(model) if i == 0 else None,
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


def expected_validation(curves: dict[str, tuple[list[float], list[float]]], metric_label: str, trials: int,
                        lower_is_better: bool = False) -> Figure | None:
    """Expected best validation score against the number of trials, one line per model, its ± one standard
    deviation shaded (Dodge et al., 2019; computed by ``harness.metrics.expected_max``).

    Args:
        curves: model -> (expected best at n = 1..trials, its standard deviation at each n).
        metric_label: the validation metric's name.
        trials: N, the trials each model had.
        lower_is_better: the metric is minimised (the curves then fall).
    """
    if not curves:
        return None
    fig, ax = _subplots(figsize=(8.5, 4.6), layout="constrained")
    colors = _colors(list(curves))
    n = np.arange(1, trials + 1)
    for model, (expected, std) in curves.items():
        mean, spread = np.asarray(expected, dtype=float), np.asarray(std, dtype=float)
        ax.plot(n, mean, marker="o", markersize=3.5, color=colors[model], linewidth=1.5, label=figure_text(model))
        ax.fill_between(n, mean - spread, mean + spread, color=colors[model], alpha=0.15, linewidth=0)
    ax.set_xlabel("hyper-parameter trials n")
    ax.set_ylabel(f"expected {'lowest' if lower_is_better else 'best'} validation {figure_text(metric_label)}")
    ax.set_title("Expected validation performance (shaded: ± one standard deviation)")
    ax.set_xlim(0.8, trials + 0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def reliability_diagram(first: dict[str, Predictions], n_bins: int = 15) -> Figure | None:
    """Top-label reliability: accuracy against confidence per bin, with the share of examples per bin below.

    Marker area is proportional to the bin's number of examples, so a bin of one example reads as the noise it
    is; the axes hold every bin, however low its accuracy.
    """
    if not first:
        return None
    fig, (top, bottom) = _subplots(
        2, 1, figsize=(8.5, 6.4), sharex=True, layout="constrained", gridspec_kw={"height_ratios": [3, 1.2]}
    )
    colors = _colors(list(first))
    k = next(iter(first.values())).probs.shape[1]
    binned = {
        name: stats.reliability_bins(preds.labels, preds.probs, n_bins) for name, preds in first.items()
    }
    largest = max(int(bins["count"].max()) for bins in binned.values()) or 1
    lowest = 1.0
    for name, preds in first.items():
        bins = binned[name]
        ece = stats.expected_calibration_error(preds.labels, preds.probs, n_bins)
        filled = bins["count"] > 0
        x, y, count = bins["confidence"][filled], bins["accuracy"][filled], bins["count"][filled]
        lowest = min(lowest, float(y.min()))
        # A thin line for the order of the bins; the markers carry the weight of each.
        top.plot(x, y, "-", color=colors[name], linewidth=1.0, alpha=0.7, zorder=2)
        top.scatter(
            x,
            y,
            s=bin_marker_area(count, largest),
            color=colors[name],
            edgecolor="white",
            linewidth=0.5,
            zorder=3,
        )
        top.plot(
            [], [], "o-", color=colors[name], markersize=6, linewidth=1.0, label=f"{figure_text(name)} (ECE {ece:.3f})"
        )
        share = count / bins["count"].sum()
        bottom.plot(x, share, "o-", color=colors[name], markersize=3, linewidth=1.0)
    top.axline((0, 0), (1, 1), linestyle=":", color="0.4", label="perfect calibration", zorder=1)
    left = max(0.0, 1.0 / k - 0.05)
    top.set_xlim(left, 1.0)
    # The floor goes under the lowest bin (a bin of one wrong example sits at 0), never above it.
    top.set_ylim(min(max(0.0, left - 0.1), lowest - 0.05), 1.05)
    top.set_ylabel("accuracy in bin")
    top.set_title(
        f"Reliability diagram (top-label, {n_bins} equal-width bins; marker area ∝ examples in the bin)"
    )
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    bottom.set_yscale("log")
    bottom.set_ylabel("share of examples\n(log scale)")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.grid(alpha=0.3)
    _settle(fig, [top, bottom])
    return fig


def bin_marker_area(count: np.ndarray, largest: int, full: float = 160.0, least: float = 3.0) -> np.ndarray:
    """Marker area (pt²) of a reliability bin: proportional to its examples, ``full`` for the largest bin.

    ``least`` keeps a bin of one example visible without giving it weight.
    """
    return np.maximum(least, full * np.asarray(count, dtype=float) / max(1, largest))
