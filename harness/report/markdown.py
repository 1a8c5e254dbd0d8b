"""The markdown renderer: sections (``harness.report.document``) as GitHub markdown.

It knows nothing of leaderboards or suites: whatever the builders put in a section is written here, the same
way every time. Another format (HTML) is one more module beside this one, rendering the same sections.
"""

from __future__ import annotations

from tabulate import tabulate

from harness.report.document import BulletList, Figure, Gallery, Paragraph, Section, Table


def render(sections: list[Section]) -> str:
    """A whole document: its sections one after another, a blank line between."""
    return "\n".join(lines(sections)) + "\n"


def lines(sections: list[Section]) -> list[str]:
    out: list[str] = []
    for i, section in enumerate(sections):
        out += ([""] if i else []) + section_lines(section)
    return out


def section_lines(section: Section) -> list[str]:
    """``#`` heading, then the caption and each block, each after a blank line."""
    out = [f"{'#' * section.level} {section.title}"]
    parts = ([Paragraph(section.caption)] if section.caption is not None else []) + list(section.blocks)
    for part in parts:
        out += ["", *block_lines(part)]
    return out


def table(block: Table) -> str:
    """A GitHub table, cells as given (no number is re-parsed or re-aligned)."""
    extra = {"colalign": block.align} if block.align else {}
    return tabulate(block.rows, headers=block.columns, tablefmt="github", disable_numparse=True, **extra)


def block_lines(block) -> list[str]:
    if isinstance(block, Section):
        return section_lines(block)
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, BulletList):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Table):
        return [table(block)] + (["", block.notes] if block.notes is not None else [])
    if isinstance(block, Figure):
        return [f"![{block.alt}]({block.path})"]
    if isinstance(block, Gallery):
        return [line for f in block.figures for line in (f"### {f.alt}", "", f"![{f.alt}]({f.path})", "")]
    raise TypeError(f"no markdown for {type(block).__name__}")


def blocks(parts: list) -> str:
    """Blocks outside a section (a notebook cell), a blank line between."""
    out: list[str] = []
    for i, part in enumerate(parts):
        out += ([""] if i else []) + block_lines(part)
    return "\n".join(out)
