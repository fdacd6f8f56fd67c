"""Studies and tuning page data: which study and tune folders the app may show, and what
they hold, read with the studies' and tuning's own readers (nothing is recomputed here).

A study folder (``study.yaml``, :mod:`cnnlab.studies.folder`) is read by
:func:`cnnlab.studies.report.read_outputs`: the cell table with its spread over seeds, the
paired comparisons and their verdicts, the summary sentences; its plots are the PNGs its
report drew. A tune folder (``tune.yaml``, :mod:`cnnlab.tuning.folder`) is read by
:func:`cnnlab.tuning.folder.read_settings`, ``trials.csv``, :func:`cnnlab.tuning.results.read_best`
and, for the history and importances, its Optuna study opened from the folder's own SQLite
storage (:func:`cnnlab.tuning.search.open_tune`), drawn by Optuna's plotly functions as
``tune.html`` draws them.

Browsable: the runs folder, the folders given on the command line, and their subfolders one
level down (``cnnlab app studies/`` shows every study in ``studies/``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from cnnlab.app.downloads import hide_folder, hide_paths
from cnnlab.app.settings import AppSettings

STUDY, TUNE = "study", "tune"
MARKERS = {STUDY: "study.yaml", TUNE: "tune.yaml"}  # studies.folder / tuning.folder names
TOP = 10  # best trials shown


def kind_of(folder: Path) -> str | None:
    """``study``, ``tune`` or None, from the folder's settings file."""
    return next((k for k, name in MARKERS.items() if (folder / name).is_file()), None)


def result_folders(settings: AppSettings) -> dict[str, tuple[str, Path]]:
    """``"study: NAME"`` / ``"tune: NAME"`` -> (kind, folder), among the browsable folders."""
    out: dict[str, tuple[str, Path]] = {}
    for root in (settings.runs_dir, *settings.folders):
        if not root.is_dir():
            continue
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            kind = kind_of(folder)
            if kind is None or any(f == folder for _, f in out.values()):
                continue
            label = f"{kind}: {folder.name}"
            out[label if label not in out else f"{label} ({len(out) + 1})"] = (kind, folder)
    return out


def study_view(folder: Path) -> dict[str, Any]:
    """A study as the page shows it: sentences, cell table, comparisons, plots, run states."""
    from cnnlab.studies.report import (
        COMPARISON_HEADERS,
        DISPLAY_HEADERS,
        comparison_row,
        display_rows,
        read_outputs,
    )

    out = read_outputs(folder)
    plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []

    def hide(text: str) -> str:  # a failed run's reason may name a file by its server path
        return hide_paths(text, folder, out.plan.data)

    return {
        "sentences": [hide(s) for s in out.sentences],
        "table": [_named(DISPLAY_HEADERS, row) for row in display_rows(out)],
        "comparisons": [_named(COMPARISON_HEADERS, comparison_row(c)) for c in out.comparisons],
        "plots": {p.stem.replace("_", " "): p.read_bytes() for p in plots},
        "runs": [
            {"cell": r.cell.id, "seed": r.seed, "status": r.status, "reason": hide(r.reason)}
            for r in out.records
        ],
        "html": hide_folder(_bytes(folder / "study.html"), folder, out.plan.data),
    }


def _bytes(file: Path) -> bytes:
    """A report's bytes for its download button; empty when it is not written yet (the
    callers replace the dataset's server path by its name: :mod:`cnnlab.app.downloads`)."""
    return file.read_bytes() if file.is_file() else b""


def _named(headers: list[str], cells: list[Any]) -> dict[str, Any]:
    """A row of text cells as a dict; a repeated header (two "95% CI") names its metric."""
    out: dict[str, Any] = {}
    for header, cell in zip(headers, cells, strict=True):
        key = header if header not in out else f"{header} ({list(out)[-1].split(' (')[0]})"
        out[key] = cell
    return out


def trials_table(folder: Path, objectives: list[str]) -> list[dict[str, Any]]:
    """``trials.csv``, complete trials first, best first by the first objective."""
    from cnnlab.tuning.folder import TRIALS_CSV

    file = folder / TRIALS_CSV
    if not file.is_file():
        return []
    with file.open(newline="", encoding="utf-8") as fh:
        rows = _numbers(list(csv.DictReader(fh)))

    def key(row: dict[str, Any]) -> tuple[bool, float]:
        value = row.get(objectives[0])
        number = isinstance(value, int | float)
        return (row.get("state") != "COMPLETE", -value if number else math.inf)

    return sorted(rows, key=key)


def _column_type(values: list[str]) -> type | None:
    """``int`` or ``float`` when every filled cell reads as one; None (text) otherwise."""
    filled = [v for v in values if v]
    for kind in (int, float):
        try:
            for value in filled:
                kind(value)
        except ValueError:
            continue
        return kind if filled else None
    return None


def _numbers(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """CSV rows with numbers as numbers, column by column (so the tables sort by value); an
    empty cell of a number column becomes None."""
    kinds = {c: _column_type([r.get(c) or "" for r in rows]) for c in (rows[0] if rows else {})}
    return [
        {k: v if kinds.get(k) is None else kinds[k](v) if v else None for k, v in row.items()}
        for row in rows
    ]


def tune_view(folder: Path) -> dict[str, Any]:
    """A tune as the page shows it: settings, best trial, trials best first, figures."""
    from cnnlab.tuning.folder import HTML, read_settings
    from cnnlab.tuning.results import read_best

    settings = read_settings(folder)
    rows = [  # a failed trial's reason may name a file by its server path
        {k: hide_paths(v, folder, settings.data) if isinstance(v, str) else v
         for k, v in row.items()}
        for row in trials_table(folder, settings.objectives)
    ]  # fmt: skip
    return {
        "summary": (f"space {settings.space_name}, objective {', '.join(settings.objectives)}, "
                    f"sampler {settings.sampler}, pruner {settings.pruner}, {settings.epochs} "
                    f"epochs per trial, {len(rows)} of {settings.trials} trials recorded"),
        "best": read_best(folder),
        "trials": rows,
        "top": [r for r in rows if r.get("state") == "COMPLETE"][:TOP],
        "figures": tune_figures(folder, settings),
        "html": hide_folder(_bytes(folder / HTML), folder, settings.data),
    }  # fmt: skip


def tune_figures(folder: Path, settings: Any) -> dict[str, Any]:
    """Optuna's optimisation history and parameter importances (plotly figures), or why not.

    Only a tune stored in the folder's own SQLite file is opened: one on a database server
    names it in ``tune.yaml`` without its password, and tune.html holds its figures.
    """
    import warnings

    from optuna import visualization as vis

    from cnnlab.schedule.storage import DEFAULT_DB
    from cnnlab.tuning.html import importance_note
    from cnnlab.tuning.search import open_tune

    if settings.storage or not (folder / DEFAULT_DB).is_file():
        return {"why": "this tune's storage is not in its folder: see tune.html"}
    study = open_tune(folder, settings, None, pooled=True)
    target = (
        {"target": lambda t: t.values[0], "target_name": settings.objectives[0]}
        if settings.multi
        else {}
    )
    figures: dict[str, Any] = {}
    note = importance_note(study)  # too few complete trials: the same sentence as tune.html
    if note is not None:
        figures["importances"] = note
    for name, draw in (
        ("history", vis.plot_optimization_history),
        ("importances", vis.plot_param_importances),
    ):
        if name in figures:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figures[name] = draw(study, **target)
        except Exception as exc:  # too few complete trials, one-valued parameters, ...
            figures[name] = f"not drawn: {exc}"
    return figures
