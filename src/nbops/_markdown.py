"""Data-derived text as inert Markdown: the one place nbops escapes what it writes into a
Markdown report (MODEL_CARD.md, the `nbops ci` summary). Standard library only.

A column name, a class label, a slice predicate, a metric name or a parameter value may hold
anything, `<script>` or `|` or a line break included. `inline` makes it text that renders as
those characters: never an HTML element, a link, emphasis, a table cell or a heading.
"""

from __future__ import annotations

import json
import re
from typing import Any


def plain(value: Any) -> str:
    """A value as text (strings as they are, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


# Line breaks (for CommonMark and for Python's splitlines) and the other control characters.
BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# What makes inline Markdown structure: escapes, code, emphasis, links and images,
# strikethrough, math (JupyterLab renders $...$) and table cells.
_MARKDOWN = re.compile(r"([\\`*_\[\]~$|])")


def inline(value: Any, *, code: bool = False) -> str:
    """Data-derived text as inert inline Markdown for a report: line breaks and control
    characters become spaces; `<` and `&` become entities, so no HTML element or entity of
    the data's survives rendering; Markdown punctuation is backslash-escaped, so the text
    opens no link, emphasis or code and splits no table cell.

    `code`: as an inline code span (the fence longer than any run of backticks inside), in
    which a renderer shows HTML as text; text holding a `|` is escaped as plain text instead,
    since a pipe in a code span would still split a table cell.
    """
    text = BREAKS.sub(" ", plain(value))
    if code and text.strip() and "|" not in text:
        fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
        pad = " " if text[0] in "` " or text[-1] in "` " else ""
        return f"{fence}{pad}{text}{pad}{fence}"
    text = _MARKDOWN.sub(r"\\\1", text)
    return text.replace("&", "&amp;").replace("<", "&lt;")
