"""Runs made within one second keep the order they were made in (`cnnlab runs`, the app).

CI found it: on a fast machine two 2-epoch runs were made in the same second, and the tie
went to the name, so the app listed ``cnn-s0`` before the older ``tiny-s0``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cnnlab.runs import creation_time, list_runs


def _run_folder(path: Path, made: float) -> Path:
    """A run folder as training leaves it before its summary: config.yaml and split.csv."""
    path.mkdir(parents=True)
    for name in ("config.yaml", "split.csv"):
        (path / name).write_text("{}\n" if name == "config.yaml" else "path,label,split\n")
        os.utime(path / name, (made, made))
    return path


def test_runs_made_within_one_second_sort_by_when_not_by_name(tmp_path: Path) -> None:
    second = float(int(time.time()) - 60)
    _run_folder(tmp_path / "tiny-s0", second + 0.2)
    _run_folder(tmp_path / "cnn-s0", second + 0.7)
    assert [r.name for r in list_runs(tmp_path)] == ["tiny-s0", "cnn-s0"]
    assert creation_time(tmp_path / "tiny-s0") < creation_time(tmp_path / "cnn-s0")


def test_the_runs_table_shows_created_to_the_second(tmp_path: Path) -> None:
    from cnnlab.summary import _cells, run_rows

    _run_folder(tmp_path / "a", float(int(time.time()) - 60) + 0.5)
    row = run_rows(tmp_path)[0]
    assert "." in row["created"]  # kept to the microsecond for sorting
    assert _cells(row, wide=True)[-1] == row["created"][:19]
