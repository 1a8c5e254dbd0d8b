"""The leaderboard's figures, checked the way a reader sees them: drawn by matplotlib's renderer, every value
inside its axes, every text inside the image, names never on top of each other, reliability markers sized by
their bin's examples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.legend import Legend
from matplotlib.lines import AxLine
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation, Text

from harness.metrics import stats
from harness.report import figures as plots
from harness.report.analysis import Predictions

# Six models as the registry has them: long names, four transformers within a few ms and a few hundredths of
# macro-F1 of each other, memory from 280 MiB to 2.6 GiB.
POINTS = [
    {
        "model": "distilbert-base-uncased",
        "quality": 0.905,
        "low": 0.880,
        "high": 0.928,
        "latency_ms": 14.0,
        "memory_mib": 900.0,
    },
    {
        "model": "bert-base-uncased",
        "quality": 0.912,
        "low": 0.889,
        "high": 0.934,
        "latency_ms": 25.0,
        "memory_mib": 1400.0,
    },
    {
        "model": "roberta-base",
        "quality": 0.918,
        "low": 0.895,
        "high": 0.940,
        "latency_ms": 26.0,
        "memory_mib": 1500.0,
    },
    {
        "model": "xlm-roberta-base",
        "quality": 0.899,
        "low": 0.874,
        "high": 0.922,
        "latency_ms": 27.0,
        "memory_mib": 2600.0,
    },
    {
        "model": "minilm-l6",
        "quality": 0.884,
        "low": 0.858,
        "high": 0.909,
        "latency_ms": 5.2,
        "memory_mib": 420.0,
    },
    {
        "model": "tfidf-logreg",
        "quality": 0.851,
        "low": 0.823,
        "high": 0.878,
        "latency_ms": 0.45,
        "memory_mib": 280.0,
    },
]
TOLERANCE_PX = 1.0


def drawn(fig):
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def values_outside_axes(ax) -> list[str]:
    """Every plotted value (line vertex, scatter point, error-bar end, bar top) outside the axes' limits."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    tol_x, tol_y = 1e-9 * (x1 - x0), 1e-9 * (y1 - y0)

    def outside(points, what):
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        bad = (
            (points[:, 0] < x0 - tol_x)
            | (points[:, 0] > x1 + tol_x)
            | (points[:, 1] < y0 - tol_y)
            | (points[:, 1] > y1 + tol_y)
        )
        return [
            f"{what} at {tuple(p)} outside x {x0:.4g}..{x1:.4g}, y {y0:.4g}..{y1:.4g}" for p in points[bad]
        ]

    problems = []
    for line in ax.get_lines():
        if isinstance(line, AxLine) or line.get_transform() != ax.transData:
            continue  # reference lines drawn across the axes, not data
        problems += outside(line.get_xydata(), f"line {line.get_label()!r}")
    for collection in ax.collections:
        if isinstance(collection, PathCollection) and collection.get_transform() is not ax.transData:
            problems += outside(collection.get_offsets(), "marker")
        elif isinstance(collection, LineCollection):
            for segment in collection.get_segments():
                problems += outside(segment, "error bar")
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_transform() == ax.transData:
            problems += outside(
                [patch.get_xy(), (patch.get_x() + patch.get_width(), patch.get_y() + patch.get_height())],
                "bar",
            )
    return problems


def markers_outside_axes(ax) -> list[str]:
    """Scatter markers whose disc (its size in points) reaches past the axes' frame."""
    frame = ax.get_window_extent()
    problems = []
    for collection in ax.collections:
        if not isinstance(collection, PathCollection) or not len(collection.get_offsets()):
            continue
        centers = ax.transData.transform(np.asarray(collection.get_offsets(), dtype=float))
        radii = np.broadcast_to(np.sqrt(collection.get_sizes()) / 2 * ax.figure.dpi / 72.0, len(centers))
        for (cx, cy), r in zip(centers, radii, strict=True):
            if (
                cx - r < frame.x0 - TOLERANCE_PX
                or cx + r > frame.x1 + TOLERANCE_PX
                or cy - r < frame.y0 - TOLERANCE_PX
                or cy + r > frame.y1 + TOLERANCE_PX
            ):
                problems.append(f"marker at {(cx, cy)} radius {r:.1f}px crosses the frame {frame}")
    return problems


def texts_outside_figure(fig, renderer) -> list[str]:
    """Texts reaching past the figure's edge: they would be cut from the image (without a tight crop)."""
    box = fig.bbox

    def outside(extent) -> bool:
        return (
            extent.x0 < box.x0 - TOLERANCE_PX
            or extent.x1 > box.x1 + TOLERANCE_PX
            or extent.y0 < box.y0 - TOLERANCE_PX
            or extent.y1 > box.y1 + TOLERANCE_PX
        )

    # Tick labels exist for ticks outside the view too (never drawn): the axis' own box holds the drawn ones.
    tick_texts = {
        id(label)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]
        for label in (tick.label1, tick.label2)
    }
    problems = []
    for text in fig.findobj(Text):
        if id(text) in tick_texts or not text.get_visible() or not text.get_text().strip():
            continue
        if outside(text.get_window_extent(renderer)):
            problems.append(
                f"text {text.get_text()!r} at {text.get_window_extent(renderer)} outside the figure {box}"
            )
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis) if ax.get_visible() else ():
            extent = axis.get_tightbbox(renderer)
            if extent is not None and outside(extent):
                problems.append(
                    f"{axis.axis_name} axis of {ax.get_title()!r} at {extent} outside the figure {box}"
                )
    return problems


def overlap(a, b) -> bool:
    return (
        min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE_PX and min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE_PX
    )


def check_figure(fig):
    renderer = drawn(fig)
    problems = texts_outside_figure(fig, renderer)
    for ax in fig.axes:
        if ax.get_visible():
            problems += values_outside_axes(ax) + markers_outside_axes(ax)
    assert not problems, "\n".join(problems)
    return renderer


def names_of(fig):
    return [t for ax in fig.axes for t in ax.texts if isinstance(t, Annotation)]


# --- quality against latency ---


@pytest.mark.parametrize("points", [POINTS, POINTS[:4], POINTS[::-1][:3]], ids=["six", "four-close", "three"])
def test_quality_latency_names_inside_the_axes_and_apart(points):
    fig = plots.quality_vs_latency([dict(p) for p in points])
    renderer = check_figure(fig)
    (ax,) = fig.axes
    frame = ax.get_window_extent()
    names = names_of(fig)
    assert sorted(t.get_text() for t in names) == sorted(p["model"] for p in points)
    # The text itself (an annotation's own extent also spans its leader line).
    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in names}
    for text, box in boxes.items():
        # Inside the axes means clear of both legends, which sit outside it.
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, text
        for legend in ax.findobj(Legend):
            assert not overlap(box, legend.get_window_extent(renderer)), f"{text} under a legend"
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        assert not overlap(box_a, box_b), f"names {a!r} and {b!r} overlap"


def test_quality_latency_interval_is_inside_the_axes_and_above_the_marker():
    """A wide interval used to run off the axes, and a large marker was drawn over it."""
    wide = [dict(p) for p in POINTS[:2]]
    wide[0].update(low=0.55, high=0.99)
    fig = plots.quality_vs_latency(wide)
    check_figure(fig)
    (ax,) = fig.axes
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    markers = [c for c in ax.collections if c.get_label() in {p["model"] for p in wide}]
    assert len(bars) == 2 and len(markers) == 2
    assert min(b.get_zorder() for b in bars) > max(m.get_zorder() for m in markers)
    low, high = ax.get_ylim()
    assert low <= 0.55 and high >= 0.99
    (segment,) = bars[0].get_segments()
    assert segment[:, 1].min() == pytest.approx(0.55) and segment[:, 1].max() == pytest.approx(0.99)


def test_quality_latency_large_markers_near_the_edge_stay_whole():
    points = [dict(p) for p in POINTS[:2]]
    points[0].update(quality=0.999, low=0.995, high=1.0, memory_mib=5000.0)
    points[1].update(quality=0.2, low=0.1, high=0.3, memory_mib=4000.0)
    check_figure(plots.quality_vs_latency(points))


def test_quality_latency_png_is_written():
    png = plots.to_png(plots.quality_vs_latency([dict(p) for p in POINTS]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# --- reliability diagram ---


def predictions(name, labels, probs):
    return Predictions(
        model=name,
        seed=42,
        ids=np.arange(len(labels)),
        labels=np.asarray(labels),
        probs=np.asarray(probs, dtype=float),
    )


def binary_with_a_bad_low_bin(n=400, seed=5):
    """Mostly confident and right; six wrong at 0.53 (accuracy 0 in that bin); one alone at 0.58."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    conf = np.clip(rng.beta(8, 1.5, n), 0.61, 0.999)
    pred = np.where(rng.random(n) < conf, labels, 1 - labels)
    conf[:6], pred[:6] = 0.53, 1 - labels[:6]  # bin (7/15, 8/15]
    conf[6], pred[6] = 0.58, 1 - labels[6]  # bin (8/15, 9/15], alone
    probs = np.zeros((n, 2))
    probs[np.arange(n), pred] = conf
    probs[np.arange(n), 1 - pred] = 1 - conf
    return predictions("minilm-l6", labels, probs)


def test_reliability_keeps_a_bin_below_the_old_floor_inside_the_axes():
    """Six wrong examples at 0.53: accuracy 0, far below the old floor of 0.35 on a binary task."""
    first = {"minilm-l6": binary_with_a_bad_low_bin()}
    bins = stats.reliability_bins(first["minilm-l6"].labels, first["minilm-l6"].probs)
    assert bins["accuracy"][7] == 0.0 and bins["count"][7] == 6  # the bin (7/15, 8/15]
    fig = plots.reliability_diagram(first)
    check_figure(fig)
    assert fig.axes[0].get_ylim()[0] < 0.0


def test_reliability_six_classes_with_a_bin_at_zero():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 300)
    logits = rng.normal(0, 1, (300, 6))
    logits[np.arange(300), labels] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs[0] = [0.05, 0.19, 0.19, 0.19, 0.19, 0.19]  # a lone example at confidence 0.19, wrong
    labels[0] = 0
    first = {
        "tfidf-logreg": predictions("tfidf-logreg", labels, probs),
        "minilm-l6": binary_like(labels, probs),
    }
    check_figure(plots.reliability_diagram(first))


def binary_like(labels, probs):
    # A second model over the same examples: flatter probabilities.
    flat = probs**0.5
    return predictions("minilm-l6", labels, flat / flat.sum(axis=1, keepdims=True))


def test_reliability_marker_area_follows_the_bin_count():
    """A bin of one example is not drawn as heavily as a full one: marker area ∝ examples in the bin."""
    preds = binary_with_a_bad_low_bin()
    fig = plots.reliability_diagram({"minilm-l6": preds})
    top = fig.axes[0]
    (markers,) = [c for c in top.collections if isinstance(c, PathCollection)]
    bins = stats.reliability_bins(preds.labels, preds.probs)
    filled = bins["count"] > 0
    count = bins["count"][filled]
    np.testing.assert_allclose(markers.get_offsets()[:, 0], bins["confidence"][filled])
    sizes = markers.get_sizes()
    assert len(sizes) == len(count)
    np.testing.assert_allclose(sizes, np.maximum(3.0, 160.0 * count / count.max()))
    assert 1 in count.tolist()
    lone, full = sizes[count.tolist().index(1)], sizes[int(np.argmax(count))]
    assert lone <= full / 50
    # Same count, same area; more examples, never a smaller marker.
    order = np.argsort(count, kind="stable")
    assert np.all(np.diff(sizes[order]) >= 0)


def test_reliability_marker_scale_is_shared_between_models():
    """Two models on the same test set: equal counts give equal areas, whichever model the bin belongs to."""
    a = binary_with_a_bad_low_bin()
    b = predictions("tfidf-logreg", a.labels, a.probs[:, ::-1])
    fig = plots.reliability_diagram({"minilm-l6": a, "tfidf-logreg": b})
    top = fig.axes[0]
    sizes = [c.get_sizes() for c in top.collections if isinstance(c, PathCollection)]
    counts = [stats.reliability_bins(p.labels, p.probs)["count"] for p in (a, b)]
    largest = max(c.max() for c in counts)
    for size, count in zip(sizes, counts, strict=True):
        np.testing.assert_allclose(size, np.maximum(3.0, 160.0 * count[count > 0] / largest))


# --- the other figures: the same checks ---


def test_per_class_f1_error_bars_stay_within_0_and_1():
    mean = np.array([[0.98, 0.5, 0.05], [0.9, 0.7, 0.2]])
    std = np.array([[0.1, 0.05, 0.2], [0.15, 0.1, 0.3]])
    fig = plots.per_class_f1(
        ["distilbert-base-uncased", "tfidf-logreg"], ["negative", "neutral", "positive"], mean, std
    )
    check_figure(fig)
    (ax,) = fig.axes
    for bars in (c for c in ax.collections if isinstance(c, LineCollection)):
        ends = np.concatenate([s[:, 1] for s in bars.get_segments()])
        assert ends.min() >= 0.0 and ends.max() <= 1.0


def test_loss_roc_and_confusion_figures_pass_the_same_checks():
    preds = binary_with_a_bad_low_bin()
    other = predictions("tfidf-logreg", preds.labels, preds.probs[:, ::-1])
    first = {"distilbert-base-uncased": preds, "tfidf-logreg": other}
    check_figure(plots.roc_curves(first, ["negative", "positive"]))
    check_figure(plots.confusion_grid(first, ["negative", "positive"]))
    curve = [{"step": s, "examples": 16 * s, "loss": 0.7 / s} for s in range(1, 40)]
    check_figure(plots.loss_curves({"distilbert-base-uncased": [curve, curve[:20]], "tfidf-logreg": []}))
