"""Explore_h 8: at COLUMNS=40 the study table lost its cell names and verdict column and cut
numbers to ``0.6…``, and ``cnnlab runs`` cut every number. A table that cannot show every
value whole now prints one record per row; at 80 columns the tables are unchanged."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from tests.conftest import write_folder
from tests.studies.conftest import TINY

from cnnlab.tablefit import fit_table

HEADERS = ["cell", "label", "seeds", "test acc", "CI over seeds", "verdict"]
ROWS = [
    ["c1", "train.lr=0.001", "3", "0.612 ± 0.031", "[0.547, 0.677]", "best"],
    ["c2", "train.lr=0.01", "3", "0.402 ± 0.058", "[0.247, 0.557]", "worse than c1 (p=0.01)"],
]


def _render(renderable, width: int) -> str:
    out = Console(width=width, record=True, highlight=False, color_system=None)
    with out.capture() as captured:
        out.print(renderable)
    return captured.get()


def _study_shaped() -> Table:
    table = Table(title="study: s1")
    for header in HEADERS:
        table.add_column(header, no_wrap=header not in ("label", "verdict"))
    for row in ROWS:
        table.add_row(*row)
    return table


@pytest.mark.parametrize("width", [20, 40, 60])
def test_a_narrow_terminal_gets_every_value_whole(width: int) -> None:
    table = _study_shaped()
    text = _render(fit_table(table, width), width)
    assert "…" not in text
    words = " ".join(text.split())
    for row in ROWS:
        for value in row[:5]:
            assert value in words, (value, text)
    assert "worse than c1" in words and "verdict" in words
    assert all(len(line) <= width for line in text.splitlines())


def test_a_table_that_fits_is_printed_as_it_is() -> None:
    table = _study_shaped()
    assert fit_table(table, 100) is table
    assert _render(fit_table(table, 100), 100) == _render(table, 100)


def _cli(*args: str, columns: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_study_and_runs_tables_at_40_columns(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=2, per_class=12, size=16)
    out = tmp_path / "study"
    done = _cli("study", str(data), "--vary", "train.lr=1e-3,1e-2", "--seeds", "2", "--out",
                str(out), "--track", "none", *TINY, "eval.explain=false", columns=200)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with (out / "table.csv").open(newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    narrow = _cli("study", "report", str(out), columns=40)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert "…" not in narrow.stdout  # the sentences after the table are soft-wrapped prose
    assert sum(line.startswith("verdict: ") for line in lines) == 2
    assert {"c1", "c2"} <= set(lines)
    for row in table:
        mean = f"test acc: {float(row['test_accuracy_mean']):.3f}"
        assert any(line.startswith(mean) and len(line) <= 40 for line in lines), narrow.stdout

    runs = _cli("runs", "--runs-dir", str(out / "runs"), columns=40)
    assert runs.returncode == 0, runs.stderr
    assert "…" not in runs.stdout and all(len(ln) <= 40 for ln in runs.stdout.splitlines())
    for name in ("c1-seed42", "c1-seed43", "c2-seed42", "c2-seed43"):
        assert name in runs.stdout.split()
    assert len(re.findall(r"^test acc: \d\.\d{3}$", runs.stdout, re.M)) == 4

    wide = _cli("study", "report", str(out), columns=200)
    assert any(line.split()[:2] == ["c1", "lr=1e-3"] for line in wide.stdout.splitlines())
