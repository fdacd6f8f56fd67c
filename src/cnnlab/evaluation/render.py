"""Render a report's sections to self-contained HTML and to Markdown.

A report is a list of :class:`Section` made of simple :class:`Block` s (paragraph, table,
preformatted text, image). HTML gets inline CSS and every PNG embedded as a base64 ``data:``
URI, so the file opens offline, attached to an email or years later; Markdown links the PNGs
beside it. Every user string (class names, paths) is escaped.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MAX_ROWS = 500  # longest table written out (skipped-file lists can be huge)
# A cell this long (a path, a long class name) may break anywhere: three such columns made a
# 60-class report's mistakes table 1,500 px wide. Shorter cells (numbers) never break.
_LONG_CELL = 32  # characters
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em;line-height:1.45}
h1{border-bottom:2px solid #4c72b0}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.long{overflow-wrap:anywhere;min-width:6em}
th{background:#f3f5f9}tr:nth-child(even) td{background:#fafafa}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}
figcaption{color:#666;font-size:.9em}.note{color:#666}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.gallery figure{width:150px;margin:0}
.gallery figcaption{white-space:pre-line;font-size:.78em;overflow-wrap:anywhere}
"""


@dataclass
class Block:
    """One piece of a section: ``p`` (text), ``table``, ``pre`` (text), ``img`` (a PNG file),
    ``gallery`` (``rows`` of ``[PNG or JPEG bytes, caption]``: pictures with captions) or
    ``raw`` (HTML made by cnnlab itself, such as an interactive plot; never user text)."""

    kind: str
    text: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    path: Path | None = None


@dataclass(frozen=True)
class Link:
    """A table cell that links to another file (a study links each run's report)."""

    text: str
    href: str


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)


def fmt(value: Any) -> str:
    if isinstance(value, Link):
        return value.text
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return "" if value is None else str(value)


def plain(value: Any) -> str:
    """A value in words for a reader, never a Python or JSON repr.

    Dicts become ``key value`` pairs, lists comma lists, nested ones in brackets; booleans
    ``yes``/``no``; floats drop a ``.0`` and keep 4 significant digits. The report showed
    ``{"min": 24, "median": 24.0, "max": 24}`` and ``False`` (explore I, finding 14).

    Example:
        >>> plain({"min": 24, "median": 24.0, "max": 24})
        'min 24, median 24, max 24'
        >>> plain({"train": {"cat": 48, "dog": 41}, "ok": False, "mean": [0.38843, 0.5]})
        'train (cat 48, dog 41), ok no, mean (0.3884, 0.5)'
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_nested(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_nested(v) for v in value)
    return "" if value is None else str(value)


def _nested(value: Any) -> str:
    text = plain(value)
    return f"({text})" if isinstance(value, dict | list | tuple) and value else text


def _html_cell(value: Any) -> str:
    """One ``<td>``: class ``long`` (may wrap anywhere) when its text is long."""
    text = value.text if isinstance(value, Link) else fmt(value)
    inner = (
        f'<a href="{html.escape(value.href)}">{html.escape(text)}</a>'
        if isinstance(value, Link)
        else html.escape(text)
    )
    return f'<td class="long">{inner}</td>' if len(text) > _LONG_CELL else f"<td>{inner}</td>"


def _html_block(block: Block) -> str:
    if block.kind == "p":
        return f"<p>{html.escape(block.text)}</p>"
    if block.kind == "pre":
        return f"<pre>{html.escape(block.text)}</pre>"
    if block.kind == "raw":
        return block.text
    if block.kind == "img" and block.path is not None:
        data = base64.b64encode(block.path.read_bytes()).decode("ascii")
        name = html.escape(block.text)
        return (
            f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name}</figcaption></figure>"
        )
    if block.kind == "gallery":
        return _html_gallery(block.rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
    body = "".join(
        "<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in block.rows[:_MAX_ROWS]
    )
    more = len(block.rows) - _MAX_ROWS
    tail = f'<p class="note">… and {more} more rows</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def _html_gallery(items: list[list[Any]]) -> str:
    cards = []
    for picture, caption in items[:_MAX_ROWS]:
        mime = "image/png" if picture[:4] == b"\x89PNG" else "image/jpeg"
        data = base64.b64encode(picture).decode("ascii")
        text = html.escape(str(caption))
        cards.append(
            f'<figure><img alt="{text}" src="data:{mime};base64,{data}">'
            f"<figcaption>{text}</figcaption></figure>"
        )
    return f'<div class="gallery">{"".join(cards)}</div>'


def render_html(title: str, sections: list[Section], head: str = "") -> str:
    """A complete HTML document with inline CSS and embedded images; no external URL.

    ``head`` is extra markup for ``<head>`` (an inline script the raw blocks use).
    """
    parts = [
        f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>'
        + "".join(_html_block(b) for b in s.blocks)
        + "</section>"
        for s in sections
    ]
    nav = " · ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>{head}</head><body>"
        f"<h1>{html.escape(title)}</h1><nav>{nav}</nav>{''.join(parts)}</body></html>\n"
    )


def _md_cell(value: Any) -> str:
    if isinstance(value, Link):
        return f"[{_md_cell(value.text)}]({value.href})"
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block, folder: Path) -> str:
    if block.kind == "p":
        return block.text
    if block.kind == "pre":
        return f"```\n{block.text}\n```"
    if block.kind == "img" and block.path is not None:
        try:
            target = block.path.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            target = block.path.as_posix()
        return f"![{block.text}]({target})"
    if block.kind == "gallery":  # the pictures are in the HTML; Markdown lists the captions
        return "\n".join("- " + _md_cell(caption) for _, caption in block.rows[:_MAX_ROWS])
    lines = ["| " + " | ".join(block.headers) + " |", "|" + "---|" * len(block.headers)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in block.rows[:_MAX_ROWS]]
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], folder: Path) -> str:
    """The same report as Markdown; images are linked relative to ``folder``."""
    out = [f"# {title}"]
    for s in sections:
        out.append(f"## {s.title}")
        out.extend(_md_block(b, folder) for b in s.blocks)
    return "\n\n".join(out) + "\n"
