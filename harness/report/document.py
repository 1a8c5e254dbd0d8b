"""What a report says, in no format: sections of tables, figures, paragraphs and lists.

The section builders (``harness.report.sections`` for a leaderboard, ``harness.report.error_sections`` for its
error analysis, ``harness.suite`` for a suite summary) draw these from the data objects; a renderer
(``harness.report.markdown``, ``harness.report.html``) writes them. Text and cells are inline markdown: plain words, user strings already
escaped by :func:`harness.core.escape.escape`, and the few inline marks the sections use (```code```,
``**bold**``, ``_emphasis_``, ``[link](target)``), which any renderer can read or convert. Numbers arrive formatted
(``harness.report.cells``), so every renderer shows the same digits.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Paragraph:
    """Running text; a newline inside is a soft line break (the same paragraph)."""

    text: str


@dataclass(frozen=True)
class BulletList:
    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table of formatted cells (strings, or whole numbers shown as written); ``notes`` is text under it."""

    columns: list[str]
    rows: list[list]
    align: list[str] | None = None  # "left" / "right" / "center" per column; None: every column left
    notes: str | None = None
    # What a renderer that can hide or mark may use (markdown shows neither): the group of each column
    # ("quality", "cost", "calibration", "per class"; "" for none), and a mark per row ("best", "tied", None).
    groups: list[str] | None = None
    marks: list[str | None] | None = None


@dataclass(frozen=True)
class Figure:
    """An image file beside the report (``path`` relative to it) and its alternative text."""

    path: str
    alt: str


@dataclass(frozen=True)
class Gallery:
    """Figures each under its own caption as a heading (the leaderboard's plots)."""

    figures: list[Figure]


@dataclass
class Section:
    """A titled part of a report: its caption (text before the content), then its blocks in order.

    ``level`` is the heading depth (1: the document's title, 2: a section, 3: a part of one). A block may be a
    Section itself (a model's part of the transfer section).
    """

    title: str
    blocks: list = field(default_factory=list)
    caption: str | None = None
    level: int = 2


def document(sections: list[Section | None]) -> list[Section]:
    """The sections that have something to say, in order (a builder returns None when it has nothing)."""
    return [s for s in sections if s is not None]
