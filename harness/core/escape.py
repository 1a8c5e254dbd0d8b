"""The one way user-controlled text enters the markdown reports and their figures.

Label names, group values, failure messages and example texts come from data files and YAML: written into
a table verbatim, a ``|`` shifts the columns, a newline starts a heading, ``<script>`` or
``[x](javascript:...)`` become live HTML or links in a renderer. Everything such goes through :func:`escape`.

Figures have the same problem in matplotlib's terms: a label written ``$\\x$`` is parsed as mathtext and ends the
report in a parse error, and ``a\\$b`` is drawn as ``a$b``. Every such string reaches a figure through
:func:`figure_text`. Data embedded in an HTML page goes through :func:`script_json`.
"""

from __future__ import annotations

import json
import math
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


def figure_text(text: object) -> str:
    """Text that matplotlib draws exactly as written: no span of it is read as mathtext.

    matplotlib parses a string with an even number of unescaped ``$`` as math and, outside math, draws ``\\$``
    as ``$``. Escaping every ``$`` as ``\\$`` leaves no unescaped one, and the drawing undoes exactly that
    escaping, so the text drawn equals ``str(text)`` (``\\``, ``_``, ``^`` and ``{}`` mean nothing outside math).
    """
    return str(text).replace("$", r"\$")


# What must not appear verbatim in JSON inside a <script> block: '</script>' or '<!--' would end or change it.
_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def script_json(value: object) -> str:
    """``value`` as JSON that can sit inside an HTML ``<script>`` element: data, never markup.

    ``<``, ``>`` and ``&`` are written ``\\u003c``, ``\\u003e``, ``\\u0026`` (the same string to ``JSON.parse``),
    so no text, label or message can close the script block or open a comment; NaN and infinities become null.
    """
    text = json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(_SCRIPT_UNSAFE.get(ch, ch) for ch in text)
