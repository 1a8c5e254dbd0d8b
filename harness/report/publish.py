"""A leaderboard's files, made in memory from the board and written: markdown, its page, CSV/JSON, errors.md, figures.

Nothing here reads the store or reads back a file it wrote: :func:`report_files` renders every file of one
configuration's report from the :class:`~harness.report.board.Leaderboard`, and :func:`publish` writes them into
the configuration's folder and again to ``<results>/<benchmark>/``, where users look first.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.config.schema import BenchmarkSpec
from harness.core.errors import HarnessInputError
from harness.report import exports, groups, html, markdown, page, sections
from harness.report.board import Leaderboard
from harness.report.document import Figure
from harness.report.error_sections import error_sections
from harness.report.records import get
from harness.store.results_store import ResultsStore, atomic_write_bytes, atomic_write_text

PLOTS_DIR = groups.PLOTS_DIR
ERRORS_FILE = sections.ERRORS_FILE
MODELS_FILE = "leaderboard_models.csv"  # one row per model, as the page shows it (leaderboard.csv: per seed)
LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.csv", MODELS_FILE, "leaderboard.json", ERRORS_FILE)
PAGE_FILE = "leaderboard.html"
# Pages link to pages: a link to a leaderboard's markdown becomes one to its HTML page.
PAGE_LINKS = {"leaderboard.md": PAGE_FILE}

log = logging.getLogger("harness")


@dataclass(frozen=True)
class Drawing:
    """One of the leaderboard's figures: where it goes, its caption, and its PNG (None: nothing to draw)."""

    path: str
    caption: str
    png: bytes | None


@dataclass
class ReportFiles:
    """Every file of one configuration's report, in memory."""

    texts: dict[str, str]
    pngs: dict[str, bytes] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)  # figures with nothing to draw: an earlier one is removed


# ----- figures ----------------------------------------------------------------------------------------------


def _latency_points(board: Leaderboard) -> list[dict]:
    points = []
    for row in board.rows:
        latency = [v for r in row.results if (v := get(r, "inference", "latency_batch1_end_to_end", "p50_ms"))]
        if not row.results or not latency:
            continue
        memory = [
            m for r in row.results
            if (m := get(r, "memory", "inference", "cuda_peak_allocated_bytes") or get(r, "memory", "inference", "rss_peak_bytes"))
        ]  # fmt: skip
        ci = get(row.stats, "ci", "f1_macro") or {}
        points.append(
            {
                "model": row.model,
                "quality": row.f1_macro,
                "low": ci.get("low", float("nan")),
                "high": ci.get("high", float("nan")),
                "latency_ms": float(np.mean(latency)),
                "memory_mib": float(np.max(memory)) / 2**20 if memory else None,
            }
        )
        # Deployment variants (lowest seed) as points of their own, linked to their model's point.
        for name, variant in row.results[0].deployment_variants.items():
            latency = get(variant, "inference", "latency_batch1_end_to_end", "p50_ms")
            if variant.status == "completed" and latency and variant.f1_macro is not None:
                rss = get(variant, "memory", "rss_peak_bytes")
                points.append({"model": f"{row.model} · {name}", "parent": row.model, "quality": variant.f1_macro,
                               "low": float("nan"), "high": float("nan"), "latency_ms": float(latency),
                               "memory_mib": rss / 2**20 if rss else None})
    return points


def _per_class_figure(board: Leaderboard, plots):
    names = board.spec.label_names
    done = [row for row in board.rows if row.results]
    if not done:
        return None
    f1 = [[[r.metrics.per_class[c].f1 for c in names] for r in row.results] for row in done]
    several = any(len(seeds) > 1 for seeds in f1)
    return plots.per_class_f1(
        [row.model for row in done],
        names,
        np.array([np.mean(s, axis=0) for s in f1]),
        np.array([np.std(s, axis=0, ddof=1) if len(s) > 1 else np.zeros(len(names)) for s in f1]) if several else None,
    )


def draw_figures(board: Leaderboard) -> list[Drawing]:
    """The leaderboard's six figures, drawn from the board (a PNG of None where there is no data for one)."""
    from harness.report import figures as plots

    names = board.spec.label_names
    first = board.first_predictions()
    done = [row for row in board.rows if row.results]
    curves = {row.model: [[dict(p) for p in (r.training.loss_curve or [])] for r in row.results] for row in done}
    figures = {
        "quality_vs_latency": ("Macro-F1 against batch-1 latency, Pareto front and memory", plots.quality_vs_latency(_latency_points(board))),
        "per_class_f1": ("Per-class F1", _per_class_figure(board, plots)),
        "roc_curves": ("ROC curves", plots.roc_curves(first, names)),
        "confusion_matrices": ("Confusion matrices", plots.confusion_grid(first, names)),
        "loss_curves": ("Training loss", plots.loss_curves(curves)),
        "reliability": ("Reliability diagram", plots.reliability_diagram(first)),
    }  # fmt: skip
    return [
        Drawing(f"{PLOTS_DIR}/{name}.png", caption, None if fig is None else plots.to_png(fig))
        for name, (caption, fig) in figures.items()
    ]


def expected_validation_png(board: Leaderboard) -> bytes | None:
    """The expected validation performance plot of a tuned board (None: no run was tuned)."""
    from harness.report import figures as plots

    ev = board.expected_validation
    if ev is None:
        return None
    curves = {s.shown: (list(s.curve.expected), list(s.curve.std)) for s in ev.models if s.curve is not None}
    fig = plots.expected_validation(curves, ev.metric_label, ev.trials, lower_is_better=ev.direction == "minimize")
    return None if fig is None else plots.to_png(fig)


def group_figures(board: Leaderboard) -> dict[str, bytes]:
    """The heatmaps of the per-group tables and transfer matrices, by path relative to the leaderboard."""
    out = {groups.per_group_figure(c): groups.per_group_png(board.spec.name, c, s) for c, s in board.group_tables.items()}
    for column, matrices in board.transfer.items():
        out.update(groups.transfer_pngs(column, matrices))
    return out


# ----- files ------------------------------------------------------------------------------------------------


def report_files(board: Leaderboard) -> ReportFiles:
    """Every file of the board's report, rendered in memory."""
    frame = exports.seed_frame(board)
    records = exports.model_records(board)
    payload = exports.payload(board, frame, records)
    pngs = group_figures(board)
    drawings = draw_figures(board)
    pngs.update({d.path: d.png for d in drawings if d.png is not None})
    shown = [Figure(d.path, d.caption) for d in drawings if d.png is not None]
    # Drawn inside its own section (not the gallery of plots), like the per-group heatmaps.
    expected = expected_validation_png(board)
    if expected is not None:
        pngs[sections.EXPECTED_VALIDATION_FIGURE] = expected
    errors = error_sections(board.first_predictions(), board.eval_texts, board.spec.label_names, board.spec.name)
    texts = {
        "leaderboard.md": markdown.render(sections.leaderboard(board, shown)),
        "leaderboard.csv": frame.to_csv(index=False),
        MODELS_FILE: exports.models_frame(records).to_csv(index=False),
        "leaderboard.json": json.dumps(payload, indent=2) + "\n",
        ERRORS_FILE: markdown.render(errors).rstrip() + "\n",
    }
    absent = [d.path for d in drawings if d.png is None] + ([] if expected else [sections.EXPECTED_VALIDATION_FIGURE])
    page_text = render_page(board, shown, pngs)
    if page_text is not None:
        texts[PAGE_FILE] = page_text
    else:
        absent.append(PAGE_FILE)  # a page from an earlier build would no longer match the store
    return ReportFiles(texts, pngs, absent)


def render_page(board: Leaderboard, shown: list[Figure], pngs: dict[str, bytes]) -> str | None:
    """leaderboard.html: the same sections as leaderboard.md, with charts and the error browser (None without
    plotly, said in one log line)."""
    try:
        return html.render(sections.leaderboard(board, shown), charts=page.charts(board), images=pngs,
                           browser=page.error_browser(board), links=PAGE_LINKS)
    except ImportError as exc:
        log.warning(f"leaderboard.html not written: {exc} (pip install plotly)")
        return None


def _write(files: ReportFiles, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.texts.items():
        atomic_write_text(out_dir / name, text)
    for relative, png in files.pngs.items():
        atomic_write_bytes(out_dir / relative, png)
    for relative in files.absent:
        (out_dir / relative).unlink(missing_ok=True)  # a figure from an earlier build would no longer match the store


def write_leaderboard(board: Leaderboard, out_dir: Path) -> Path:
    """Every file of one configuration's report, drawn from the leaderboard object, into ``out_dir``."""
    _write(report_files(board), out_dir)
    return out_dir / "leaderboard.md"


def write_report(store: ResultsStore, spec: BenchmarkSpec, label: str | None = None) -> Path:
    """Rebuild a configuration's report in its folder and copy it to ``<results>/<benchmark>/``.

    Returns the path of the copy users read, ``<results>/<benchmark>/leaderboard.md``.
    """
    return publish(store, Leaderboard.from_store(store, spec, label))


class NothingToReport(HarnessInputError):
    """The configuration holds no run at all: its report would blank the leaderboard, so none is written."""


def publish(store: ResultsStore, board: Leaderboard) -> Path:
    """Write ``board`` into its configuration's folder and again to ``<results>/<benchmark>/``.

    A board without a single run (usable or not) is refused with :class:`NothingToReport`: an empty table
    never replaces a leaderboard. The top copy's plots folder holds exactly this build's figures.
    """
    config_dir = store.config_dir(board.spec.name, board.configuration.label)
    if board.runs.empty:
        raise NothingToReport(
            str(config_dir), "holds no runs, so the leaderboard is left as it was",
            "run the benchmark to fill it, or report another configuration with --configuration LABEL",
        )
    files = report_files(board)
    _write(files, config_dir)
    top = store.benchmark_dir(board.spec.name)
    # The copy sits two folders up: links to sibling configurations go through configs/.
    texts = {**files.texts, "leaderboard.md": files.texts["leaderboard.md"].replace("](../", "](configs/")}
    if PAGE_FILE in texts:
        texts[PAGE_FILE] = texts[PAGE_FILE].replace('href="../', 'href="configs/')
    if (top / PLOTS_DIR).is_dir():
        shutil.rmtree(top / PLOTS_DIR)
    _write(ReportFiles(texts, files.pngs), top)
    # The top-level leaderboard and current-configuration.json name the same configuration, always: the one
    # whose command wrote them last (so a later plain 'report' rebuilds what is on top, never another one).
    store.set_current(board.configuration)
    return top / "leaderboard.md"


def render_markdown(board: Leaderboard) -> str:
    """The leaderboard's text alone: its tables and captions, without the sections that link to files."""
    return markdown.render(sections.leaderboard(board, None, with_groups=False))
