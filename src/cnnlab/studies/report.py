"""Write a study's result files and its self-contained ``study.html`` from the study folder."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.studies import compare, results
from cnnlab.studies.folder import COMPARISONS, HTML, RESULTS, TABLE, load_plan
from cnnlab.studies.plan import Plan
from cnnlab.studies.words import VERDICT_WORDS, same_score, summary_sentences

SPREAD_METRICS = ("test_accuracy", "test_macro_f1")  # table.csv's mean, std and CI over seeds


@dataclass
class Outputs:
    """Everything ``write_outputs`` computed, for the console table and the Python API."""

    plan: Plan
    records: list[results.RunRecord]
    results: list[dict[str, Any]]
    table: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    reference: dict[str, Any] | None
    sentences: list[str]


def table_columns(plan: Plan) -> list[str]:
    spreads = [f"{m}_{k}" for m in SPREAD_METRICS for k in results.SPREAD]
    extra = ["val_accuracy_mean", "params", "trainable_params", "train_time_s_mean", "init",
             "stopped_early", "failed"]  # fmt: skip
    return ["cell", "label", *plan.varied, "n", *spreads, *extra]


def results_columns(plan: Plan) -> list[str]:
    tail = ["params", "trainable_params", "train_time_s", "best_epoch", "reason"]
    return ["cell", "label", *plan.varied, "seed", "run_dir", "status", *results.METRICS, *tail]


def _classes(records: list[results.RunRecord]) -> list[str]:
    """The class names of the first finished run whose ``classes.json`` reads (a study's
    runs share one split)."""
    import contextlib

    from cnnlab.errors import CnnlabError
    from cnnlab.runs import CLASSES, read_json

    for r in records:
        if r.status == "done":
            with contextlib.suppress(CnnlabError):
                return list(read_json(r.path / CLASSES))
    return []


def read_outputs(folder: str | Path) -> Outputs:
    """Everything the result files hold, computed from the folder's runs; nothing is written
    (the app shows a study this way)."""
    folder = Path(folder)
    plan, _ = load_plan(folder)
    records = results.collect(folder, plan)
    rows = results.results_rows(folder, plan, records)
    table = results.table_rows(plan, records)
    comps = compare.comparison_rows(plan, records, table, len(_classes(records)))
    ref, chosen_on = compare.reference(table) if plan.compare == "best" else (None, "")
    failures = [(r.cell.id, r.seed, r.reason) for r in records if r.status == "failed"]
    unfinished = sum(r.status in ("pending", "incomplete") for r in records)
    words = summary_sentences(plan, table, comps, ref, chosen_on, failures, unfinished)
    return Outputs(plan, records, rows, table, comps, ref, words + unscored_sentences(records))


def unscored_sentences(records: list[results.RunRecord]) -> list[str]:
    """One sentence per finished run left out of the paired comparisons because its test
    predictions are missing or damaged (its metrics still count in the table)."""
    out = []
    for r in records:
        why = results.unscored(r.path) if r.status == "done" else None
        if why is not None:
            out.append(f"Left out of the paired comparisons and per-class F1: {why}.")
    return out


def write_outputs(folder: str | Path) -> Outputs:
    """results.csv, table.csv, comparisons.csv and study.html from the folder's runs."""
    folder = Path(folder)
    out = read_outputs(folder)
    results.write_csv(folder / RESULTS, out.results, results_columns(out.plan))
    stated = [stated_spread(row) for row in out.table]
    results.write_csv(folder / TABLE, stated, table_columns(out.plan))
    results.write_csv(folder / COMPARISONS, out.comparisons, compare.COLUMNS)
    write_html(folder, load_plan(folder)[1], out, _classes(out.records))
    return out


def stated_spread(row: dict[str, Any]) -> dict[str, Any]:
    """The row as table.csv and the accuracy chart state it: a metric whose seeds tied
    (:func:`~cnnlab.studies.words.same_score`, the rule behind the report's "unknown (seeds
    tied)") has no std and no CI (NaN: empty in the CSV, no error bar), since its std of 0 and
    zero-width interval measure nothing. ``out.table`` keeps the 0 the rule reads."""
    stated = dict(row)
    for metric in SPREAD_METRICS:
        if same_score(row, metric):
            stated.update({f"{metric}_{k}": math.nan for k in ("std", "ci_low", "ci_high")})
    return stated


def ordered(out: Outputs) -> list[dict[str, Any]]:
    """Table rows for display: best first (a ladder keeps its order)."""
    if out.plan.compare == "previous":
        return list(out.table)

    def key(row: dict[str, Any]) -> tuple:
        acc = row["test_accuracy_mean"]
        return (row["n"] == 0, -(acc if not math.isnan(acc) else -1.0))

    return sorted(out.table, key=key)


def verdict_of(out: Outputs, cell: str) -> str:
    """The verdict words for a cell's row (the reference says so itself)."""
    if out.reference is not None and out.reference["cell"] == cell:
        return "reference"
    prefix = "vs previous step: " if out.plan.compare == "previous" else ""
    for c in out.comparisons:
        if c["cell"] == cell:
            return prefix + VERDICT_WORDS.get(c["verdict"], c["verdict"])
    return ""


def _spread(row: dict[str, Any], metric: str) -> tuple[str, str]:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if math.isnan(mean):
        return "", ""
    if same_score(row, metric):  # std 0 measures nothing, and [m, m] is no 95% interval
        return f"{mean:.3f}", "unknown (seeds tied)"
    main = f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"
    ci = "unknown (1 seed)" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"
    return main, ci


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def display_rows(out: Outputs) -> list[list[Any]]:
    """The table as text cells, best first: shared by study.html and the console."""
    rows = []
    for row in ordered(out):
        acc, acc_ci = _spread(row, "test_accuracy")
        f1, f1_ci = _spread(row, "test_macro_f1")
        t = row["train_time_s_mean"]
        rows.append(
            [
                row["cell"], row["label"], row["init"], row["n"], acc, acc_ci, f1, f1_ci,
                _count(row["params"]), _count(row["trainable_params"]),
                "" if math.isnan(t) else f"{t:.1f}", verdict_of(out, row["cell"]),
            ]
        )  # fmt: skip
    return rows


DISPLAY_HEADERS = [
    "cell", "label", "init", "seeds", "test acc (mean ± std)", "95% CI", "macro F1 (mean ± std)",
    "95% CI", "params", "trained params", "train s", "verdict",
]  # fmt: skip


def class_f1(y: np.ndarray, pred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One run's F1 per class and confusion matrix; F1 is NaN for a class with no image that
    was never predicted (0/0: the run reports say "no image" and leave it out of macro F1).

    Example:
        >>> f1, _ = class_f1(np.array([0, 1]), np.array([0, 0]), 3)
        >>> [round(float(v), 3) for v in f1]
        [0.667, 0.0, nan]
    """
    from sklearn.metrics import confusion_matrix, f1_score

    counts = confusion_matrix(y, pred, labels=list(range(k)))
    f1 = f1_score(y, pred, labels=list(range(k)), average=None, zero_division=0)
    measured = counts.sum(axis=0) + counts.sum(axis=1) > 0
    return np.where(measured, f1, np.nan), counts


def mean_over_seeds(f1s: list[np.ndarray]) -> np.ndarray:
    """Per class, the mean F1 of the seeds that measured it; NaN where none did."""
    with warnings.catch_warnings():  # all-NaN columns are expected: no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(f1s, axis=0)


def _per_class(out: Outputs, k: int) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Mean per-class F1 per cell (NaN: no seed measured it), and the reference cell's
    confusion matrix summed over seeds."""
    rows, names, cm = [], [], None
    best = out.reference["cell"] if out.reference else None
    for row in ordered(out):
        done = [r for r in out.records if r.cell.id == row["cell"] and r.status == "done"
                and results.unscored(r.path) is None]  # fmt: skip
        if not done:
            continue
        f1s, total = [], np.zeros((k, k), dtype=np.int64)
        for r in done:
            pairs = list(results.predictions(r.path).values())
            y, p = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
            f1, counts = class_f1(y, p, k)
            f1s.append(f1)
            total += counts
        rows.append(mean_over_seeds(f1s))
        names.append(f"{row['label']} ({row['cell']})")
        if row["cell"] == best:
            cm = total
    return np.array(rows), names, cm


def _plots(folder: Path, out: Outputs, classes: list[str]) -> list[tuple[str, Path]]:
    from cnnlab.evaluation.metrics import metric_series
    from cnnlab.evaluation.plots import plot_confusion_matrix
    from cnnlab.runs import Run
    from cnnlab.studies import plots

    target = folder / "plots"
    ran = [r for r in ordered(out) if r["n"] > 0]
    if not ran:
        return []
    bars = plots.plot_accuracy_bars([stated_spread(r) for r in ran], target / "accuracy.png")
    shown = [("test accuracy per cell", bars)]
    curves = {
        f"{row['label']} ({row['cell']})": [
            np.array(metric_series(Run(r.path).metrics(), "val/accuracy"))
            for r in out.records
            if r.cell.id == row["cell"] and r.status == "done"
        ]
        for row in ran
    }
    shown.append(("learning curves", plots.plot_cell_curves(curves, target / "curves.png")))
    costs = [("params", "parameters", True)]
    if any(r["trainable_params"] != r["params"] for r in ran):  # a frozen or partial cell
        costs.append(("trainable_params", "trained parameters", True))
    for key, label, log in [*costs, ("train_time_s_mean", "train s", False)]:
        file = plots.plot_tradeoff(ran, key, target / f"accuracy_vs_{key}.png", label, log)
        shown.append((f"test accuracy vs {label}", file))
    f1, names, cm = _per_class(out, len(classes))
    if len(names):
        shown.append(("F1 per class", plots.plot_f1_heatmap(f1, names, classes, target / "f1.png")))
    if cm is not None:
        file = plot_confusion_matrix(cm, classes, target / "confusion_best.png")
        shown.append(("confusion matrix of the reference cell, summed over seeds", file))
    return shown


COMPARISON_HEADERS = [
    "cell", "label", "vs", "seeds", "images", "Δ accuracy [95% CI]", "Δ macro F1 [95% CI]",
    "p McNemar", "p Holm", "verdict",
]  # fmt: skip


def _method(plan: Plan) -> str:
    against = (
        "each step against the step before it"
        if plan.compare == "previous"
        else "every cell against the reference, the cell with the highest mean validation "
        "accuracy (choosing on test and then testing on it would flatter the winner)"
    )
    return (
        f"Compared: {against}. Δ is the row's cell minus the other, on the test split, averaged "
        "over the seeds both ran. The 95% CI comes from a paired bootstrap over test images "
        "(the same resampled images score both cells and every seed). p McNemar: the exact "
        "McNemar test on which images each got right (the largest p over seed pairs); p Holm: "
        "adjusted for the number of comparisons. A verdict other than 'not distinguishable' "
        "needs both the CI to exclude 0 and p Holm < 0.05."
    )


def _diff(c: dict[str, Any], name: str) -> str:
    value = c.get(name)
    if value is None or math.isnan(value):
        return ""
    return f"{value:+.4f} [{c[name + '_ci_low']:+.4f}, {c[name + '_ci_high']:+.4f}]"


def comparison_row(c: dict[str, Any]) -> list[Any]:
    """A comparisons.csv row as text cells under ``COMPARISON_HEADERS`` (study.html, app)."""
    p, holm = c.get("p_mcnemar", math.nan), c.get("p_holm", math.nan)
    return [
        c["cell"], c["label"], c["reference_cell"], c["seeds"], c["images"],
        _diff(c, "diff_accuracy"), _diff(c, "diff_macro_f1"),
        "" if math.isnan(p) else f"{p:.3g}", "" if math.isnan(holm) else f"{holm:.3g}",
        VERDICT_WORDS.get(c["verdict"], c["verdict"]),
    ]  # fmt: skip


def _table(headers: list[str], rows: list[list[Any]]) -> Any:
    from cnnlab.evaluation.render import Block

    return Block("table", headers=headers, rows=rows)


def _run_rows(folder: Path, out: Outputs) -> list[list[Any]]:
    from cnnlab.evaluation.render import Link

    rows = []
    for r in out.records:
        report = r.path / "report.html"
        link = Link("report", report.relative_to(folder).as_posix()) if report.is_file() else ""
        rows.append([r.cell.id, r.seed, r.status, r.metric("test_accuracy"), link, r.reason])
    return rows


def write_html(folder: Path, doc: dict[str, Any], out: Outputs, classes: list[str]) -> Path:
    """``study.html``: conclusions, the table, comparisons, plots, runs, how to reproduce."""
    from cnnlab.atomic import atomic_write_text
    from cnnlab.evaluation.render import Block, Section, render_html

    summary = Section("summary", "Conclusions", [Block("p", s) for s in out.sentences])
    summary.blocks.append(Block("p", f"Data: {out.plan.data} · seeds: {out.plan.seeds}"))
    comp_rows = [comparison_row(c) for c in out.comparisons]
    figures = [Block("img", text, path=p) for text, p in _plots(folder, out, classes)]
    run_headers = ["cell", "seed", "status", "test acc", "report", "reason"]
    command = f"{doc.get('command', '')}\n{doc.get('reproduce', '')}"
    sections = [
        summary,
        Section("table", "Cells", [_table(DISPLAY_HEADERS, display_rows(out))]),
        Section("comparisons", "Paired comparisons",
                [Block("p", _method(out.plan)), _table(COMPARISON_HEADERS, comp_rows)]),
        Section("plots", "Plots", figures),
        Section("runs", "Runs", [_table(run_headers, _run_rows(folder, out))]),
        Section("reproduce", "Reproduce", [Block("pre", command)]),
    ]  # fmt: skip
    title = f"Study: {out.plan.recipe or ', '.join(out.plan.varied) or 'cells'}"
    atomic_write_text(folder / HTML, render_html(title, sections))
    return folder / HTML
