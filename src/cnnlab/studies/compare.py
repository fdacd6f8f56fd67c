"""Paired comparisons between cells: which differences are real at 95%.

``best``: the cell with the highest mean *validation* accuracy is the reference and every other
cell is compared with it on the test split (choosing on test and then testing on it would
flatter the winner). ``previous``: each cell against the one before it (a ladder's gains).

Each row: the mean difference (row cell minus reference) of test accuracy and macro F1 with a
paired bootstrap 95% CI over test images (seeds paired), the exact McNemar p-value (the largest
over seed pairs), Holm-adjusted over all rows, and a verdict for the row's cell.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.studies import stats
from cnnlab.studies.plan import Plan
from cnnlab.studies.results import RunRecord, paired_arrays

COLUMNS = [
    "cell",
    "label",
    "reference_cell",
    "reference_label",
    "seeds",
    "images",
    "diff_accuracy",
    "diff_accuracy_ci_low",
    "diff_accuracy_ci_high",
    "diff_macro_f1",
    "diff_macro_f1_ci_low",
    "diff_macro_f1_ci_high",
    "p_mcnemar",
    "p_holm",
    "verdict",
]
# Seeds the bootstrap of every comparison, in a study and on the app's Compare page alike:
# a comparison's interval depends on its two cells only, not on its row's place in a table.
BOOTSTRAP_SEED = 0


def _key(row: dict[str, Any], name: str) -> float:
    value = row.get(name)
    return -math.inf if value is None or math.isnan(value) else float(value)


def reference(table: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The best cell by mean validation accuracy (test accuracy when there is no val split)."""
    ran = [row for row in table if row["n"] > 0]
    if not ran:
        return None, ""
    on_val = any(not math.isnan(row["val_accuracy_mean"]) for row in ran)
    metric = "val_accuracy_mean" if on_val else "test_accuracy_mean"
    best = max(ran, key=lambda r: (_key(r, metric), _key(r, "test_accuracy_mean")))
    return best, "validation" if on_val else "test"


def pairs(plan: Plan, table: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """(row cell, reference cell) table rows to compare."""
    ran = [row for row in table if row["n"] > 0]
    if plan.compare == "previous":
        return [(table[i], table[i - 1]) for i in range(1, len(table)) if table[i]["n"] > 0]
    best, _ = reference(table)
    return [(row, best) for row in ran if best is not None and row is not best]


def paired_difference(arrays: tuple[np.ndarray, ...], num_classes: int) -> dict[str, Any]:
    """Seeds, images, the accuracy and macro-F1 differences (a minus b) with paired bootstrap
    95% CIs, and the exact McNemar p-value, of ``(labels, preds_a, preds_b, ...)`` arrays
    (:func:`cnnlab.studies.results.paired_predictions`); the app's Compare page uses it too,
    so over a study's runs it gives the study's numbers (:data:`BOOTSTRAP_SEED`)."""
    y, a, b = arrays[:3]
    out: dict[str, Any] = {"seeds": len(a), "images": int(y.size)}
    for metric, name in (("accuracy", "diff_accuracy"), ("macro_f1", "diff_macro_f1")):
        d = stats.paired_bootstrap(
            y, a, b, metric=metric, num_classes=num_classes, seed=BOOTSTRAP_SEED
        )
        out.update({name: d.diff, f"{name}_ci_low": d.ci_low, f"{name}_ci_high": d.ci_high})
    out["p_mcnemar"] = stats.mcnemar(y, a, b).pvalue
    return out


def add_verdicts(rows: list[dict[str, Any]]) -> None:
    """Holm-adjust the rows' McNemar p-values together and give each row its verdict
    (``not compared`` for a row with no seeds in common)."""
    adjusted = stats.holm([r["p_mcnemar"] for r in rows])
    for r, p in zip(rows, adjusted, strict=True):
        r["p_holm"] = float(p)
        if r["seeds"] == 0:
            r["verdict"] = "not compared"
            continue
        r["verdict"] = stats.verdict(r["diff_accuracy_ci_low"], r["diff_accuracy_ci_high"], p)


def _one(row: dict, ref: dict, records: list[RunRecord], num_classes: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cell": row["cell"],
        "label": row["label"],
        "reference_cell": ref["cell"],
        "reference_label": ref["label"],
    }
    runs = {
        cell: [r for r in records if r.cell.id == cell and r.status == "done"]
        for cell in (row["cell"], ref["cell"])
    }
    arrays = paired_arrays(runs[row["cell"]], runs[ref["cell"]]) if ref["n"] > 0 else None
    if arrays is None:  # nothing finished in common: no paired comparison is possible
        return {**out, "seeds": 0, "images": 0, "p_mcnemar": math.nan}
    return {**out, **paired_difference(arrays, num_classes)}


def comparison_rows(
    plan: Plan, records: list[RunRecord], table: list[dict[str, Any]], num_classes: int
) -> list[dict[str, Any]]:
    """Every comparison of the plan, Holm-adjusted together, each with its verdict."""
    rows = [_one(row, ref, records, num_classes) for row, ref in pairs(plan, table)]
    add_verdicts(rows)
    return rows
