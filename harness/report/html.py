"""The HTML renderer: the same sections as ``harness.report.markdown``, as one self-contained page.

It knows nothing of leaderboards: every section, table and paragraph is written here the same way every time.
What a page adds to the sections comes as data: ``charts`` (interactive versions of figures, keyed by the
figure's path; ``harness.report.page`` draws them from a leaderboard), ``images`` (the PNG of a figure that has
no chart, inlined as a ``data:`` URI) and ``browser`` (the error browser's rows).

The page needs nothing beyond the file: its styles, its script and Plotly's JavaScript are inlined, and its
Content-Security-Policy allows no remote source. Plotly because its offline bundle ships inside the ``plotly``
PyPI package (:func:`plotly.offline.get_plotlyjs`: no network at build or view time), it is maintained, and it
gives hover, zoom and heatmaps without code of ours (about 4.6 MB, once per page).

Safety: section text is inline markdown whose user strings were escaped by :func:`harness.core.escape.escape`;
:func:`inline` undoes exactly that escaping and writes the text through :func:`html.escape`, so a label is shown
as written and never becomes markup. Data goes in one JSON block written by :func:`harness.core.escape.script_json`,
and the page's script puts strings into the document with ``textContent`` only.
"""

from __future__ import annotations

import base64
import html
import re
from importlib import resources

from harness.core.escape import script_json
from harness.report.document import BulletList, Figure, Gallery, Paragraph, Section, Table

# Above this many charts for one figure, the page shows one at a time with a picker.
PICK_ABOVE = 6
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"

# The inline marks of the sections' text (harness.report.document), in the order they are tried at a position.
_INLINE = re.compile(
    r"\\(?P<esc>[!-/:-@\[-`{-~])"
    r"|(?P<ent>&(?:amp|lt|gt|quot);)"
    r"|`(?P<code>[^`]+)`"
    r"|\*\*(?P<strong>(?:\\.|[^\\*])+?)\*\*"
    r"|(?<!\w)_(?P<em>(?=\S)(?:\\.|[^\\_])+?)_(?!\w)"
    r"|\[(?P<text>(?:\\.|[^\\\]])*)\]\((?P<href>[^()\s]*)\)"
)
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"'}
# Link targets a page may follow: relative paths and web addresses (no javascript:, data: or other schemes).
_SAFE_HREF = re.compile(r"^(?:https?://|(?![a-zA-Z][a-zA-Z0-9+.-]*:))[^\"'<>\s]*$")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_INTERVAL = re.compile(r"^(?P<x>[-+]?[\d.]+)(?: ± [\d.]+)? \[(?P<lo>[-+]?[\d.]+), (?P<hi>[-+]?[\d.]+)\]")


def _code_text(text: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])|&(?:amp|lt|gt|quot);", lambda m: m[1] or _ENTITIES[m[0]], text)


def _walk(text: str, links: dict[str, str], as_html: bool) -> str:
    out, at = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[at : m.start()]) if as_html else text[at : m.start()])
        at = m.end()
        if m["esc"] is not None or m["ent"] is not None:
            char = m["esc"] if m["esc"] is not None else _ENTITIES[m["ent"]]
            out.append(html.escape(char) if as_html else char)
        elif m["code"] is not None:
            plain = _code_text(m["code"])
            out.append(f"<code>{html.escape(plain)}</code>" if as_html else plain)
        elif m["strong"] is not None:
            inner = _walk(m["strong"], links, as_html)
            out.append(f"<strong>{inner}</strong>" if as_html else inner)
        elif m["em"] is not None:
            inner = _walk(m["em"], links, as_html)
            out.append(f"<em>{inner}</em>" if as_html else inner)
        else:
            inner = _walk(m["text"], links, as_html)
            href = _link(m["href"], links)
            if not as_html:
                out.append(inner)
            elif href is None:
                out.append(inner)
            else:
                out.append(f'<a href="{html.escape(href)}">{inner}</a>')
    out.append(html.escape(text[at:]) if as_html else text[at:])
    return "".join(out)


def _link(href: str, links: dict[str, str]) -> str | None:
    """The target a page links to: a report file renamed to its page (``leaderboard.md`` -> ``.html``)."""
    if not _SAFE_HREF.match(href):
        return None
    head, _, name = href.rpartition("/")
    if name in links:
        return f"{head}/{links[name]}" if head else links[name]
    return href


def inline(text: str, links: dict[str, str] | None = None) -> str:
    """Inline markdown of a section (escaped user strings, code, bold, emphasis, links) as HTML."""
    return _walk(str(text), links or {}, True)


def plain(text: str) -> str:
    """The text a reader sees of inline markdown: marks dropped, escaping undone (``plain(escape(s))`` is ``s``
    with its whitespace collapsed)."""
    return _walk(str(text), {}, False)


def sort_key(cell) -> float | None:
    """The number a column sorts by: the cell's first number (``n/a``, ``-`` and words: none)."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return float(cell)
    m = _NUMBER.search(plain(cell))
    if m is None or not any(ch.isdigit() for ch in m[0]):
        return None
    try:
        return float(m[0].replace(",", ""))
    except ValueError:
        return None


class _Page:
    def __init__(self, charts: dict, images: dict[str, bytes], links: dict[str, str]):
        self.charts, self.images, self.links = charts, images, links
        self.chart_data: list[dict] = []
        self.tables = 0
        self.anchors = 0

    def text(self, text: str) -> str:
        return inline(text, self.links)

    def section(self, section: Section) -> str:
        level = min(max(section.level, 1), 6)
        anchor = ""
        if level == 2:
            self.anchors += 1
            anchor = f' id="s-{self.anchors}"'
        head = f"<h{level}{anchor}>{self.text(section.title)}</h{level}>"
        parts = [head]
        if section.caption is not None:
            parts.append(f'<p class="caption">{self.text(section.caption)}</p>')
        parts += [self.block(b) for b in section.blocks]
        return f'<section class="level{level}">' + "\n".join(parts) + "</section>"

    def block(self, block) -> str:
        if isinstance(block, Section):
            return self.section(block)
        if isinstance(block, Paragraph):
            return "<p>" + "<br>".join(self.text(line) for line in block.text.split("\n")) + "</p>"
        if isinstance(block, BulletList):
            return "<ul>" + "".join(f"<li>{self.text(item)}</li>" for item in block.items) + "</ul>"
        if isinstance(block, Table):
            return self.table(block)
        if isinstance(block, Figure):
            return self.figure(block)
        if isinstance(block, Gallery):
            return "\n".join(f"<h3>{self.text(f.alt)}</h3>{self.figure(f)}" for f in block.figures)
        raise TypeError(f"no HTML for {type(block).__name__}")

    def table(self, block: Table) -> str:
        self.tables += 1
        groups = block.groups or [""] * len(block.columns)
        align = block.align or ["left"] * len(block.columns)

        def attrs(k: int) -> str:
            group = f' data-group="{html.escape(groups[k])}"' if groups[k] else ""
            return group + (f' class="{align[k]}"' if align[k] != "left" else "")

        head = "".join(
            f'<th data-col="{k}"{attrs(k)} title="sort">{self.text(c)}</th>' for k, c in enumerate(block.columns)
        )
        rows = []
        for i, row in enumerate(block.rows):
            mark = (block.marks or [None] * len(block.rows))[i]
            cells = []
            for k, cell in enumerate(row):
                key = sort_key(cell)
                value = "" if key is None else f' data-v="{key!r}"'
                text = self.text(cell) if isinstance(cell, str) else html.escape(str(cell))
                ci = _INTERVAL.match(plain(cell)) if isinstance(cell, str) else None
                bar = (f'<span class="ci" data-x="{ci["x"]}" data-lo="{ci["lo"]}" data-hi="{ci["hi"]}"></span>'
                       if ci else "")
                cells.append(f"<td{attrs(k)}{value}>{text}{bar}</td>")
            rows.append(f'<tr{f" class={chr(34)}mark-{mark}{chr(34)}" if mark else ""}>' + "".join(cells) + "</tr>")
        table = (f'<div class="scroll"><table class="data" id="table-{self.tables}"><thead><tr>{head}</tr></thead>'
                 f"<tbody>{''.join(rows)}</tbody></table></div>")
        notes = f'<p class="notes">{self.text(block.notes)}</p>' if block.notes is not None else ""
        return table + notes

    def figure(self, figure: Figure) -> str:
        charts = self.charts.get(figure.path)
        if charts and len(charts) > PICK_ABOVE:
            # Many of one kind (a confusion matrix per model): one chart at a time, picked by its title.
            first = len(self.chart_data)
            self.chart_data += charts
            options = "".join(f'<option value="{first + k}">{html.escape(c.get("title", str(k)))}</option>'
                              for k, c in enumerate(charts))
            return (f'<div class="charts"><label>show <select class="pick">{options}</select></label>'
                    f'<div class="chart" data-chart="{first}"></div></div>')
        if charts:
            out = []
            for chart in charts:
                self.chart_data.append(chart)
                out.append(f'<div class="chart" data-chart="{len(self.chart_data) - 1}"></div>')
            return '<div class="charts">' + "".join(out) + "</div>"
        png = self.images.get(figure.path)
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            return f'<img alt="{html.escape(plain(figure.alt))}" src="data:image/png;base64,{data}">'
        return f'<p class="missing">{self.text(figure.alt)} (figure not drawn)</p>'


def _asset(name: str) -> str:
    return resources.files("harness.report").joinpath("assets", name).read_text(encoding="utf-8")


def plotly_js() -> str:
    """Plotly's offline bundle (raises ImportError without the ``plotly`` package)."""
    from plotly.offline import get_plotlyjs

    code = get_plotlyjs()
    if "</script" in code.lower():  # it sits inside a script element
        raise ValueError("this plotly bundle contains '</script' and cannot be inlined")
    return code


def render(
    sections: list[Section],
    *,
    charts: dict[str, list[dict]] | None = None,
    images: dict[str, bytes] | None = None,
    browser: dict | None = None,
    links: dict[str, str] | None = None,
) -> str:
    """A whole page: a contents bar, column-group switches, the sections, then the error browser.

    ``links`` renames link targets by file name (``{"leaderboard.md": "leaderboard.html"}``) so pages link to
    pages. Raises ImportError when plotly is not installed.
    """
    page = _Page(charts or {}, images or {}, links or {})
    body = "\n".join(page.section(s) for s in sections)
    title = plain(sections[0].title) if sections else "report"
    titles = [s.title for s in sections if s.level == 2]
    contents = "".join(f'<a href="#s-{k}">{page.text(t)}</a>' for k, t in enumerate(titles, 1))
    if browser is not None:
        contents += '<a href="#errors">Error browser</a>'
        body += '\n<section class="level2" id="errors"><h2>Error browser</h2><div id="browser"></div></section>'
    data = {"charts": page.chart_data, "browser": browser}
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_asset('page.css')}</style></head><body>"
        f'<nav id="contents">{contents}</nav><div id="groups"></div><main>{body}</main>'
        f'<script type="application/json" id="page-data">{script_json(data)}</script>'
        # Plotly's code waits as text until a chart comes near the screen (page.js runs it then): the page
        # opens and sorts without compiling 4.6 MB of JavaScript first.
        f'<script type="text/plain" id="plotly-js">{plotly_js()}</script>'
        f"<script>{_asset('page.js')}</script></body></html>\n"
    )
