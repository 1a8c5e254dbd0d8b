"""The one way user-controlled text enters the markdown reports.

Label names, group values, failure messages and example texts come from data files and YAML: written into
a table verbatim, a ``|`` shifts the columns, a newline starts a heading, ``<script>`` or
``[x](javascript:...)`` become live HTML or links in a renderer. Everything such goes through :func:`escape`.
"""

from __future__ import annotations

import re

# Punctuation that opens emphasis, links, images, code or a table cell anywhere in a line; escaped with '\\'.
# ('(' and ')' only matter after ']', which is escaped; '<' and '>' become entities below.)
_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")
# What only matters at the start of a line or cell: headings, lists, quotes.
_LEADING = re.compile(r"^(\s*)(?:([#+\-])|(\d+)([.)]))")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def escape(text: object, limit: int | None = None) -> str:
    """Plain text safe inside a markdown table cell or heading: one line, no markup, no HTML.

    Args:
        text: anything; ``str()`` of it is used.
        limit: cut to this many characters (before escaping), ending with an ellipsis.
    """
    text = " ".join(str(text).split())  # newlines and tabs would end a table row or start a block
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = _PUNCTUATION.sub(r"\\\1", text)
    text = "".join(_HTML.get(ch, ch) for ch in text)
    return _LEADING.sub(lambda m: m[1] + (f"\\{m[2]}" if m[2] else f"{m[3]}\\{m[4]}"), text)
