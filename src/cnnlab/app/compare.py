"""Compare page logic: runs grouped into cells, each cell's spread over seeds, and paired
verdicts against the best cell, with :mod:`cnnlab.studies.stats` (the studies' statistics).

A cell is the runs that differ only by seed (same model and transfer mode, or each run alone).
Like a study, the cell with the best mean validation accuracy is the reference; every other
cell is compared with it on the test images both have, seeds paired (seed ``k`` of one cell
with seed ``k`` of the other; a one-run cell pairs with a one-run cell directly), with a paired
bootstrap CI of the accuracy difference and the exact McNemar test, Holm-adjusted: the
studies' own paired arrays and comparison (:mod:`cnnlab.studies.results`,
:mod:`cnnlab.studies.compare`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.runs import Run
from cnnlab.studies import stats

GROUPINGS = ("model and mode", "each run")


def _seed(run: Run) -> int | None:
    try:
        return (run.config.get("train") or {}).get("seed")
    except CnnlabError:
        return None


def cells(runs: list[Run], grouping: str) -> dict[str, list[Run]]:
    """Cell label -> its runs (sorted by seed)."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        if grouping == "each run":
            label = run.name
        else:
            summary = run.summary
            label = f"{summary.get('model')} / {summary.get('mode')}"
        out.setdefault(label, []).append(run)
    return {k: sorted(v, key=lambda r: (_seed(r) is None, _seed(r) or 0)) for k, v in out.items()}


def _metric(run: Run, split: str, key: str) -> float:
    value = ((run.summary.get("metrics") or {}).get(split) or {}).get(key)
    return math.nan if value is None else float(value)


def spread_rows(groups: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """Per cell: seeds, and mean, std and 95% CI over seeds of test accuracy and macro F1."""
    rows = []
    for label, runs in groups.items():
        row: dict[str, Any] = {"cell": label, "runs": len(runs)}
        for split, key in (("val", "accuracy"), ("test", "accuracy"), ("test", "macro_f1")):
            s = stats.spread([_metric(r, split, key) for r in runs])
            name = f"{split} {key}"
            row.update({name: s.mean, f"{name} std": s.std})
            if split == "test":
                row.update({f"{name} CI low": s.ci_low, f"{name} CI high": s.ci_high})
        rows.append(row)
    return rows


def _pairs(a: list[Run], b: list[Run]) -> list[tuple[Run, Run]]:
    if len(a) == 1 and len(b) == 1:
        return [(a[0], b[0])]
    by_seed = {_seed(r): r for r in b}
    return [(r, by_seed[_seed(r)]) for r in a if _seed(r) in by_seed]


def paired_arrays(a: list[Run], b: list[Run]) -> tuple[np.ndarray, ...] | None:
    """Labels ``(images,)`` and predictions ``(seeds, images)`` of two cells, or None.

    Seeds paired as :func:`_pairs` says; the arrays are built by the studies code
    (:func:`cnnlab.studies.results.paired_predictions`) from each run's test predictions.
    """
    from cnnlab.studies.results import paired_predictions

    def scored(run: Run) -> bool:
        return (run.path / "predictions" / "test.csv").is_file()

    pairs = [(x.path, y.path) for x, y in _pairs(a, b) if scored(x) and scored(y)]
    return paired_predictions(pairs)


def verdict_rows(groups: dict[str, list[Run]], spread: list[dict[str, Any]]) -> list[dict]:
    """Each cell against the best one (by mean validation accuracy), Holm-adjusted, with the
    studies' own comparison (:func:`cnnlab.studies.compare.paired_difference`)."""
    from cnnlab.studies.compare import add_verdicts, paired_difference

    if len(spread) < 2:
        return []
    key = "val accuracy" if any(not math.isnan(r["val accuracy"]) for r in spread) else (
        "test accuracy")  # fmt: skip
    best = max(spread, key=lambda r: -math.inf if math.isnan(r[key]) else r[key])
    classes = len(groups[best["cell"]][0].classes)
    rows = []
    for i, row in enumerate(r for r in spread if r is not best):
        out: dict[str, Any] = {"cell": row["cell"], "reference": best["cell"]}
        arrays = paired_arrays(groups[row["cell"]], groups[best["cell"]])
        if arrays is None:
            rows.append({**out, "seeds": 0, "images": 0, "p_mcnemar": math.nan})
        else:
            rows.append({**out, **paired_difference(arrays, classes, seed=i)})
    add_verdicts(rows)
    return rows
