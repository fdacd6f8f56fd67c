"""Pick ensemble members from a study folder (``cnnlab study``'s output contract).

``STUDY/results.csv`` has one row per run: ``cell``, ``label``, ``seed``, ``run_dir``
(relative to the study folder), ``status`` and ``val_accuracy`` among others. Cells are ranked
by their mean *val* accuracy over finished seeds, never by test (that would select on the
split the ensemble is judged on), and each of the top K cells contributes its seed with the
best val accuracy.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from cnnlab.console import info
from cnnlab.errors import RunError

RESULTS = "results.csv"
DONE = "done"


def _val(row: dict[str, str]) -> float:
    try:
        value = float(row.get("val_accuracy") or "nan")
    except ValueError:
        return math.nan
    return value


def study_members(study_dir: str | Path, top: int) -> list[Path]:
    """Run folders of the best seed of each of the ``top`` cells with the best mean val accuracy
    (all cells, said in one line, when the study has fewer than ``top``).

    Raises:
        RunError: no results.csv, or fewer than two finished cells with a val accuracy.
    """
    folder = Path(study_dir)
    file = folder / RESULTS
    if not file.is_file():
        raise RunError(f"{file}: missing; --from-study wants a `cnnlab study` output folder")
    with file.open(newline="", encoding="utf-8") as fh:
        rows = [
            r for r in csv.DictReader(fh) if r.get("status") == DONE and not math.isnan(_val(r))
        ]
    cells: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        cells.setdefault(row["cell"], []).append(row)
    if len(cells) < 2:
        raise RunError(f"{file}: {len(cells)} finished cell(s) with a val accuracy; need two")
    if top < 2:
        raise RunError(f"--top {top}: an ensemble needs at least two members")
    if top > len(cells):
        info(f"--top {top}: the study has {len(cells)} finished cells with a val accuracy, so "
             f"the ensemble is chosen from those {len(cells)}")  # fmt: skip
    mean = {c: sum(_val(r) for r in rs) / len(rs) for c, rs in cells.items()}
    ranked = sorted(cells, key=lambda c: -mean[c])[:top]  # stable: study order on ties
    return [folder / max(cells[c], key=_val)["run_dir"] for c in ranked]
