"""What a study's numbers allow one to say, in plain words and never more.

A cell is called "the best" only when every other cell is worse at 95%; overlapping cells are
"not distinguishable at 95%". One seed per cell is allowed, but then no spread is known and
the words say so; the same holds for seeds that all scored the same.
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.studies.plan import Plan

VERDICT_WORDS = {
    "better": "better at 95%",
    "worse": "worse at 95%",
    "not distinguishable": "not distinguishable at 95%",
    "not compared": "not compared (no finished runs in common)",
}
METHOD = "paired bootstrap CI over test images and Holm-adjusted exact McNemar test"


def _names(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['label']} ({r['cell']})" for r in rows)


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:+.1f} pts"


def _gain(c: dict[str, Any]) -> str:
    """``+1.2 pts, 95% CI -0.5 to +2.9`` for a comparison row's accuracy difference."""
    low, high = c.get("diff_accuracy_ci_low"), c.get("diff_accuracy_ci_high")
    if low is None or math.isnan(low):
        return _pct(c.get("diff_accuracy"))
    return f"{_pct(c.get('diff_accuracy'))}, 95% CI {_pct(low)} to {_pct(high)}"


def _p(c: dict[str, Any]) -> str:
    p = c.get("p_holm")
    return "n/a" if p is None or math.isnan(p) else f"{p:.2g}"


def _test_decided(c: dict[str, Any]) -> bool:
    """A ``not distinguishable`` row whose bootstrap interval excludes 0: the interval alone
    would have called it a difference, and the McNemar test (the verdict needs both) did not."""
    low, high = c.get("diff_accuracy_ci_low"), c.get("diff_accuracy_ci_high")
    excludes_0 = low is not None and not math.isnan(low) and (low > 0 or high < 0)
    return c["verdict"] == "not distinguishable" and excludes_0


def _test(c: dict[str, Any]) -> str:
    """The McNemar p-value behind a row's verdict; for a row :func:`_test_decided` names,
    that the test decided, and with several seeds that p is the largest over seed pairs."""
    said = f"McNemar p={_p(c)} after Holm"
    if not _test_decided(c):
        return said
    seeds = c.get("seeds")
    largest = (
        f", the largest over its {seeds} seed pairs since every pair must show it,"
        if isinstance(seeds, int) and seeds > 1
        else ""
    )
    return (
        f"{said}{largest} is not below 0.05, so not distinguishable although the bootstrap "
        "interval excludes 0"
    )


def same_score(row: dict[str, Any], metric: str = "test_accuracy") -> bool:
    """Whether a cell's seeds (two or more) all scored exactly the same on ``metric``: its
    std of 0 and zero-width interval measure nothing about what another seed would give."""
    std = row.get(f"{metric}_std")
    return row["n"] > 1 and std is not None and std == 0.0


def same_score_sentences(ran: list[dict[str, Any]]) -> list[str]:
    """Cells whose seeds tied, told apart by their runs' test predictions
    (:func:`cnnlab.studies.results.seed_predictions`): one model trained again (a frozen
    backbone with a deterministic head), different models that tied (at a ceiling, say), or
    a tie the saved files cannot explain. In every case no spread over seeds is known."""
    same = [r for r in ran if same_score(r)]
    groups = {k: [r for r in same if r.get("seed_predictions", "") == k] for k in WHY_TIED}
    return [
        f"{_names(rows)}: every seed scored the same test accuracy, so the spread over seeds "
        f"is unknown (no std or CI over seeds). {WHY_TIED[k]}"
        for k, rows in groups.items()
        if rows
    ]


WHY_TIED = {  # keyed by results.seed_predictions
    "same": "The runs saved the same test predictions: the setting does not depend on the "
    "seed (a frozen backbone with a logistic-regression or SVM head, say), so it gives one "
    "result however many seeds run, counted once per seed; the paired comparisons resample "
    "test images and test each seed pair on its own, so the repeats add no evidence there.",
    "differ": "The runs are different models (their test predictions differ) that tied on the "
    "metric, at its ceiling or on a test set too small to separate them: the repeats are "
    "evidence, but how far another seed could fall is not measured.",
    "": "A setting that does not depend on the seed (a frozen backbone with a "
    "logistic-regression or SVM head, say) gives one result however many seeds run, counted "
    "once per seed, and then the repeats add no evidence to the paired comparisons; the "
    "saved predictions cannot tell whether that is the case here.",
}


def best_sentences(ref: dict[str, Any], chosen_on: str, comps: list[dict]) -> list[str]:
    """The reference (highest mean validation accuracy) against every other cell."""
    by = {v: [c for c in comps if c["verdict"] == v] for v in VERDICT_WORDS}
    name = f"{ref['label']} ({ref['cell']})"
    if comps and len(by["worse"]) == len(comps):
        return [f"{name} is the best cell: every other cell is worse at 95% ({METHOD})."]
    out = [
        f"{name} has the highest mean {chosen_on} accuracy"
        + (
            " (chosen on the test split: there is no validation split)."
            if chosen_on == "test"
            else "."
        )
    ]
    if by["not distinguishable"]:
        out.append(
            f"It is not distinguishable at 95% from {_names(by['not distinguishable'])}, "
            "so no single best cell can be named."
        )
        for c in by["not distinguishable"]:
            if _test_decided(c):
                out.append(
                    f"Against {c['label']} ({c['cell']}) the interval alone would have called "
                    f"it a difference ({c['label']} minus {ref['label']}: {_gain(c)}; {_test(c)})."
                )
    if by["worse"]:
        out.append(f"It is better at 95% than {_names(by['worse'])} ({METHOD}).")
    if by["better"]:
        out.append(
            f"On the test split {_names(by['better'])} did better than it at 95%: the choice "
            "made on validation did not hold on test."
        )
    if by["not compared"]:
        out.append(
            f"Not compared (no finished runs with shared seeds): {_names(by['not compared'])}."
        )
    return out


def ladder_sentences(comps: list[dict]) -> list[str]:
    """Each step against the one before it: which steps brought a real gain."""
    out = []
    for verdict, words in (
        ("better", "Steps with a real gain over the previous step at 95%"),
        ("worse", "Steps that made things worse at 95%"),
        ("not distinguishable", "Steps not distinguishable from the previous one at 95%"),
    ):
        hits = [c for c in comps if c["verdict"] == verdict]
        if hits:
            gains = "; ".join(f"{c['label']} ({_gain(c)}; {_test(c)})" for c in hits)
            out.append(f"{words}: {gains}.")
    return out


def _early_stopping(row: dict[str, Any]) -> bool:
    return row.get("train.early_stopping") is True


def early_stopping_sentences(table: list[dict[str, Any]], comps: list[dict]) -> list[str]:
    """A compared cell that turned early stopping on whose runs it never stopped: what
    differs is the rest of the step (a ladder's last step also doubles the epochs)."""
    rows = {r["cell"]: r for r in table}
    out = []
    for c in comps:
        pair = [rows.get(c["cell"]), rows.get(c.get("reference_cell", ""))]
        if c["verdict"] == "not compared" or None in pair:
            continue
        on = [r for r in pair if _early_stopping(r)]
        if len(on) != 1 or on[0].get("stopped_early") != 0:
            continue  # both or neither stop early, it fired, or the runs predate the field
        mine, other = on[0], next(r for r in pair if r is not on[0])
        epochs, before = mine.get("train.epochs"), other.get("train.epochs")
        cause = "does not come from early stopping"
        if isinstance(epochs, int) and isinstance(before, int) and epochs > before:
            cause = f"comes from the longer training (up to {epochs} epochs, not {before})"
        out.append(
            f"Early stopping never fired in any of the {mine['n']} run(s) of {mine['label']} "
            f"({mine['cell']}), so its difference from {other['label']} ({other['cell']}) "
            f"{cause}."
        )
    return out


def no_skill_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """Cells whose mean test accuracy is not above always answering the most frequent class."""
    from cnnlab.evaluation.intervals import beats_majority

    out = []
    for r in rows:
        majority, n = r.get("test_majority_accuracy"), r.get("test_images")
        mean = r.get("test_accuracy_mean")
        if any(v is None or math.isnan(v) for v in (majority, n, mean)):
            continue  # runs from before the baseline was recorded
        if not beats_majority(mean, majority, int(n)):
            out.append(
                f"{r['label']} ({r['cell']}) did not learn: its mean test accuracy "
                f"({mean:.3f}) is not above always answering the most frequent class "
                f"({majority:.3f}) at 95%, so its comparisons say nothing about the setting "
                "itself (check its learning rate, normalisation and epochs)."
            )
    return out


def summary_sentences(
    plan: Plan,
    table: list[dict[str, Any]],
    comps: list[dict[str, Any]],
    ref: dict[str, Any] | None,
    chosen_on: str,
    failures: list[tuple[str, int, str]],
    unfinished: int,
) -> list[str]:
    """The study's conclusions, worded no stronger than the numbers allow."""
    ran = [r for r in table if r["n"] > 0]
    if not ran:
        out = ["No run has finished, so there is nothing to report yet."]
    elif len(ran) == 1:
        out = [f"Only {ran[0]['label']} ({ran[0]['cell']}) has finished runs: nothing to compare."]
    elif plan.compare == "previous":
        out = ladder_sentences(comps)
    else:
        out = best_sentences(ref or ran[0], chosen_on, comps)
    out.extend(early_stopping_sentences(table, comps))
    out.extend(no_skill_sentences(ran))
    out.extend(same_score_sentences(ran))
    one_seed = [r for r in ran if r["n"] == 1]
    if one_seed:
        out.append(
            f"{len(one_seed)} cell(s) have a single finished seed, so their spread over seeds is "
            "unknown (no std or CI over seeds); run more seeds before trusting small differences."
        )
    for cell, seed, reason in failures:
        out.append(f"Run {cell} seed {seed} failed: {reason}")
    out.extend(_retry_sentence(failures))
    if unfinished:
        out.append(
            f"{unfinished} run(s) have not finished; continue with `cnnlab study --resume DIR`."
        )
    return out


def _retry_sentence(failures: list[tuple[str, int, str]]) -> list[str]:
    """How to train failed runs again: all but diverged ones (a result) once fixed."""
    from cnnlab.schedule.runs import is_divergence

    if all(is_divergence(reason) for _, _, reason in failures):
        return []
    return [
        "Once the cause of a failure is fixed (a restored file, free memory or disk), "
        "`cnnlab study --resume DIR` trains those runs again (a diverged run is kept: it is "
        "the setting's result)."
    ]
