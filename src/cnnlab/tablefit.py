"""Tables that stay readable in a narrow terminal: every value whole, or one record per row.

rich fits a table that is too wide by squeezing its columns: a no-wrap cell is cut
(``0.6…``) and a column can vanish altogether (a study's verdict at 40 columns). A number
cut short reads as another number, so when the no-wrap cells cannot all be shown whole
(and the wrapping ones at least a word wide), the rows are printed as records instead:
the first cell as a heading, then one ``header: value`` line per column.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cnnlab.console import console as _console


def fit_table(
    table: Table, width: int | None = None, console: Console | None = None
) -> RenderableType:
    """``table`` if it fits ``width`` (default: the terminal's) with nothing cut, else
    :func:`records` of its rows.

    Example:
        >>> t = Table("name", "acc")
        >>> t.add_row("a-long-run-name", "0.6123")
        >>> fit_table(t, width=80) is t, isinstance(fit_table(t, width=12), Group)
        (True, True)
    """
    console = console or _console
    width = console.width if width is None else width
    return table if needed_width(table, console) <= width else records(table)


def needed_width(table: Table, console: Console | None = None) -> int:
    """The narrowest width at which no cell of ``table`` is cut: no-wrap columns as wide as
    their widest cell, wrapping ones as their longest word, plus borders and padding."""
    console = console or _console
    options = console.options.update_width(10**6)
    saved = [column.min_width for column in table.columns]
    try:
        for column in table.columns:
            if column.no_wrap:
                cells = [column.header, *column.cells]
                column.min_width = max(
                    Measurement.get(console, options, cell).maximum for cell in cells
                )
        return Measurement.get(console, options, table).minimum
    finally:
        for column, min_width in zip(table.columns, saved, strict=True):
            column.min_width = min_width


def records(table: Table) -> Group:
    """The rows of ``table`` one below the other: the first cell as a heading, then one
    ``header: value`` line per other column, wrapped at spaces like prose (a number is one
    word, so it is never split while the terminal is wider than it)."""
    columns = table.columns
    parts: list[RenderableType] = []
    if table.title:
        parts.append(table.title if isinstance(table.title, Text) else Text(str(table.title)))
    cells = [list(column.cells) for column in columns]
    for row in range(len(cells[0]) if cells else 0):
        parts += [Text(""), _text(cells[0][row])]
        for column, values in zip(columns[1:], cells[1:], strict=True):
            header = " ".join(str(column.header).split())  # "val\nacc" -> "val acc"
            parts.append(Text.assemble(f"{header}: ", _text(values[row])))
    return Group(*parts)


def _text(cell: RenderableType) -> Text:
    """A cell as Text, its markup applied as the table would have (the tables add str)."""
    if isinstance(cell, Text):
        return cell
    return Text.from_markup(cell) if isinstance(cell, str) else Text(str(cell))
