"""The study's result in the terminal: the table (best first), the conclusions, the paths."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.table import Table

from cnnlab.console import result
from cnnlab.studies.folder import HTML
from cnnlab.studies.report import DISPLAY_HEADERS, Outputs, display_rows

# (header, index into display_rows): the columns that fit a terminal; the first "95% CI" is
# test accuracy's. Macro F1 and the costs are in table.csv and study.html.
_COLUMNS = [
    (header, DISPLAY_HEADERS.index(name))
    for header, name in [("cell", "cell"), ("label", "label"), ("seeds", "seeds"),
                         ("test acc", "test acc (mean ± std)"), ("CI over seeds", "95% CI"),
                         ("verdict", "verdict")]
]  # fmt: skip


def study_table(out: Outputs, title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for header, _ in _COLUMNS:
        numeric = header in ("seeds", "test acc", "CI over seeds")
        wrap = header in ("label", "verdict")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=not wrap)
    for row in display_rows(out):
        table.add_row(*(str(row[i]) for _, i in _COLUMNS))
    return table


def print_outputs(folder: Path, out: Outputs) -> None:
    """Shown even with ``--quiet``: this is the result of the command."""
    from cnnlab.tablefit import fit_table

    # a narrow terminal: one record per cell rather than cut numbers and a lost verdict column
    result(fit_table(study_table(out, f"study: {folder}")))
    for sentence in out.sentences:
        result(sentence)
    result(f"report: {folder / HTML}")
