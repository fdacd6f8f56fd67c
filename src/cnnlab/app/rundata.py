"""Runs page data: a leaderboard of a runs folder and one run's curves, matrix and mistakes.

Everything here reads the run-folder contract (:mod:`cnnlab.runs`); nothing is recomputed.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.evaluation.metrics import metric_series
from cnnlab.runs import PLOTS, Run

SPLITS = ("test", "val")
CURVES = {"loss": ("train/loss", "val/loss"), "accuracy": ("train/accuracy", "val/accuracy")}


def _root(run: Run) -> str:
    try:
        return str((run.config.get("data") or {}).get("root") or "")
    except CnnlabError:
        return ""


def _dataset(run: Run) -> str:
    """The run's dataset folder name (what a visitor recognises, not the server path)."""
    return Path(_root(run)).name


def report_bytes(run: Run) -> bytes:
    """The run's ``report.html`` for download, its dataset folder named without its server
    path (:mod:`cnnlab.app.downloads`)."""
    from cnnlab.app.downloads import hide_folder

    return hide_folder(run.report.read_bytes(), _root(run))


def _configured_model(run: Run) -> tuple[str | None, str | None]:
    """Model name and mode from ``config.yaml``, for a run without a summary (killed, or still
    training); a mode left to the model's default is resolved as training resolves it."""
    import yaml

    try:
        model = run.config.get("model") or {}
    except (CnnlabError, yaml.YAMLError, AttributeError):
        return None, None
    name, mode = model.get("name"), model.get("mode")
    if name and mode is None:
        from cnnlab.models.transfer import resolve_mode

        with contextlib.suppress(CnnlabError):
            mode = resolve_mode(str(name), None)
    return name, mode


def leaderboard(runs_dir: Path) -> list[dict[str, Any]]:
    """One row per run folder: name, model, mode, dataset, epochs, val/test accuracy and F1,
    and whether a tune's pruner stopped it (its metrics are a short run's, as `cnnlab runs`
    marks it).

    The columns ``cnnlab runs`` reads (:func:`cnnlab.summary.run_rows`), named for the page;
    a run without a readable summary (killed, or still training) shows the model and mode
    of its ``config.yaml``.
    """
    from cnnlab.summary import run_rows

    rows = []
    for r in run_rows(runs_dir):
        model, mode = r["model"], r["mode"]
        if model is None or mode in (None, "auto"):  # `cnnlab runs` leaves auto unresolved
            model, mode = _configured_model(Run(r["path"]))
        row: dict[str, Any] = {
            "run": r["name"],
            "model": model,
            "mode": mode,
            "dataset": _dataset(Run(r["path"])),
            "epochs": r["epochs_run"],
            "complete": r["complete"],
            "problem": r["problem"],  # a damaged file: neither usable nor resumable
            "pruned": bool(r["complete"] and r.get("pruned")),  # a tune's trial stopped early
        }
        for split in ("val", "test"):
            for key, short in (("accuracy", "acc"), ("macro_f1", "F1")):
                row[f"{split} {short}"] = r[f"{split}_{key}"]
        row["time (s)"] = r["train_time_s"]
        rows.append(row)
    return rows


def filter_rows(rows: list[dict[str, Any]], **chosen: list[str]) -> list[dict[str, Any]]:
    """Rows whose value in each named column is one of the chosen values (none chosen: all)."""
    return [r for r in rows if all(not v or r.get(k) in v for k, v in chosen.items())]


def learning_curves(run: Run) -> dict[str, dict[str, list[float]]]:
    """``{"loss": {"train/loss": [...], "val/loss": [...]}, "accuracy": {...}}`` per epoch."""
    rows = run.metrics()
    return {
        name: {key: metric_series(rows, key) for key in keys if rows and key in rows[0]}
        for name, keys in CURVES.items()
    }


def epoch_axis(epochs: int, most: int = 10) -> dict[str, Any]:
    """Plotly x-axis settings for learning curves: whole epochs only (plotly's own ticks put
    1.5 between epochs 1 and 2), one every 1, 2, 5, 10, 20... epochs, ``most`` ticks at most.

    >>> [epoch_axis(n)["dtick"] for n in (2, 10, 15, 100, 101)]
    [1, 1, 2, 10, 20]
    """
    nice = (f * 10**e for e in itertools.count() for f in (1, 2, 5))  # 1, 2, 5, 10, 20, ...
    step = next(s for s in nice if epochs <= most * s)
    return {"title": "epoch", "tickmode": "linear", "tick0": 0, "dtick": step}


def plot_file(run: Run, split: str, name: str) -> Path | None:
    """A PNG the run wrote (``plots/<split>_<name>.png``), if present."""
    file = run.path / PLOTS / f"{split}_{name}.png"
    return file if file.is_file() else None
