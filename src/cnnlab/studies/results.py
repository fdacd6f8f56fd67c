"""From run folders to ``results.csv``, ``table.csv`` and ``comparisons.csv``.

Everything is read from the study folder (``study.yaml`` and the run folders), never from the
scheduler's storage, so ``cnnlab study report`` works on a copied folder.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import atomic_write_text
from cnnlab.errors import CnnlabError, RunError
from cnnlab.runs import CLASSES, Run, probs_file, read_json
from cnnlab.schedule.runs import read_failure
from cnnlab.studies import stats
from cnnlab.studies.folder import RUNS
from cnnlab.studies.plan import Cell, Plan

METRICS = ("val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1")
SPREAD = ("mean", "std", "ci_low", "ci_high")


@dataclass
class RunRecord:
    """One (cell, seed) of the plan and what its run folder says."""

    cell: Cell
    seed: int
    path: Path
    status: str  # done | failed | incomplete | pending
    reason: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> float:
        split, key = name.split("_", 1)
        value = self.summary.get("metrics", {}).get(split, {}).get(key)
        return float(value) if value is not None else math.nan


def collect(folder: Path, plan: Plan) -> list[RunRecord]:
    """The state of every planned run, from its folder."""
    out = []
    for cell, seed in plan.jobs():
        path = folder / RUNS / plan.run_name(cell, seed)
        reason = read_failure(path)
        run = Run(path)
        summary = run.summary if run.is_complete else {}
        if reason is not None:
            status = "failed"
        elif summary:
            status = "done"
        else:
            status = "incomplete" if path.exists() else "pending"
        out.append(RunRecord(cell, seed, path, status, reason or "", summary))
    return out


def _dotted(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def cell_settings(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each cell's resolved value of every varied key (the base fills keys a cell leaves)."""
    out = {}
    for cell in plan.cells:
        resolved = plan.config(cell, plan.seeds[0]).model_dump(mode="json")
        out[cell.id] = {key: _dotted(resolved, key) for key in plan.varied}
    return out


def trained_settings(planned: dict[str, Any], runs: list[RunRecord]) -> dict[str, Any]:
    """A cell's varied settings as its runs trained them: a default batch size that
    ``train.min_steps`` lowered is the one each run's summary records (a set one is kept)."""
    out = dict(planned)
    used = [r.summary["batch_size"] for r in runs if r.summary.get("batch_size")]
    if "train.batch_size" in out and used:
        out["train.batch_size"] = used[0]
    return out


def results_rows(folder: Path, plan: Plan, records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per run: the results.csv contract."""
    settings = cell_settings(plan)
    rows = []
    for r in records:
        s = r.summary
        rows.append(
            {
                "cell": r.cell.id,
                "label": r.cell.label,
                **trained_settings(settings[r.cell.id], [r]),
                "seed": r.seed,
                "run_dir": r.path.relative_to(folder).as_posix(),
                "status": r.status,
                **{m: r.metric(m) for m in METRICS},
                "params": param_count(s, "total"),
                "trainable_params": param_count(s, "trainable"),
                "train_time_s": s.get("train_time_s", ""),
                "best_epoch": s.get("best_epoch", ""),
                "reason": r.reason,
            }
        )
    return rows


def param_count(summary: dict[str, Any], kind: str) -> int | str:
    """The run's ``total`` or ``trainable`` parameter count, ``""`` when not recorded.

    A frozen backbone's run has as many parameters as its fine-tuned twin but trains only
    its head: the trainable count is what makes the two comparable.
    """
    params = summary.get("params")
    value = params.get(kind) if isinstance(params, dict) else None
    return value if isinstance(value, int) else ""


def initialisation(records: list[RunRecord]) -> str:
    """``pretrained`` or ``random``: how the cell's networks started (from the model card)."""
    for r in records:
        card = r.path / "model.json"
        if card.is_file():
            return "pretrained" if read_json(card).get("pretrained") else "random"
    return ""


def stopped_early(runs: list[RunRecord]) -> int | None:
    """How many of the runs early stopping ended (None when a summary predates the field):
    words.py warns when a cell that turned it on never stopped."""
    if not runs or any("stopped_early" not in r.summary for r in runs):
        return None
    return sum(bool(r.summary["stopped_early"]) for r in runs)


def table_rows(plan: Plan, records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per cell: test accuracy and macro F1 as mean, std and 95% CI over seeds."""
    settings = cell_settings(plan)
    rows = []
    for cell in plan.cells:
        mine = [r for r in records if r.cell.id == cell.id]
        done = [r for r in mine if r.status == "done"]
        row: dict[str, Any] = {"cell": cell.id, "label": cell.label}
        row.update(trained_settings(settings[cell.id], done))
        row["n"] = len(done)
        for metric in ("test_accuracy", "test_macro_f1"):
            spread = stats.spread([r.metric(metric) for r in done])
            row.update({f"{metric}_{k}": getattr(spread, k) for k in SPREAD})
            # A t-interval over few seeds can pass the metric's bounds; it cannot leave [0, 1].
            row[f"{metric}_ci_low"] = float(np.clip(spread.ci_low, 0.0, 1.0))
            row[f"{metric}_ci_high"] = float(np.clip(spread.ci_high, 0.0, 1.0))
        tied = row["n"] > 1 and row["test_accuracy_std"] == 0.0
        row["seed_predictions"] = seed_predictions([r.path for r in done]) if tied else ""
        row["val_accuracy_mean"] = stats.spread([r.metric("val_accuracy") for r in done]).mean
        # the no-skill baseline of the shared test split, and its size (words.py tests it)
        row["test_majority_accuracy"] = max((r.metric("test_majority_accuracy") for r in done),
                                            default=math.nan)  # fmt: skip
        row["test_images"] = max((r.metric("test_num_samples") for r in done), default=math.nan)
        for column, kind in (("params", "total"), ("trainable_params", "trainable")):
            counts = [param_count(r.summary, kind) for r in done]
            row[column] = next((c for c in counts if c != ""), "")
        times = [float(r.summary.get("train_time_s", math.nan)) for r in done]
        row["train_time_s_mean"] = float(np.mean(times)) if times else math.nan
        row["init"] = initialisation(done)
        row["stopped_early"] = stopped_early(done)
        row["failed"] = sum(r.status == "failed" for r in mine)
        rows.append(row)
    return rows


TEST_PREDICTIONS = "predictions/test.csv"  # relative to a run folder, as messages name it
SAME_PROBS_ATOL = 1e-6  # float noise of one computation done twice, far below any model change


def seed_predictions(run_dirs: list[Path]) -> str:
    """Whether runs whose seeds tied on the metric are one model or several.

    ``"same"`` when every run saved the same test probabilities (a setting the seed does not
    change), ``"differ"`` when probabilities or predicted classes differ (different models
    that tied, at a ceiling such as 1.000, say), ``""`` when the files cannot tell: predicted
    classes alone cannot, since different models at 100% predict the same classes.
    """
    files = [probs_file(d, "test") for d in run_dirs]
    if all(f.is_file() for f in files):
        try:
            probs = [np.load(f, allow_pickle=False) for f in files]
        except (OSError, ValueError):
            probs = []
        if probs and all(p.shape == probs[0].shape for p in probs):
            same = all(np.allclose(p, probs[0], rtol=0, atol=SAME_PROBS_ATOL) for p in probs)
            return "same" if same else "differ"
    try:
        preds = [predictions(d) for d in run_dirs]
    except RunError:
        return ""
    return "" if all(p == preds[0] for p in preds) else "differ"


def predictions(run_dir: Path) -> dict[str, tuple[int, int]]:
    """``path -> (true, predicted)`` class indices on the test split of one run.

    Raises:
        RunError: the file is missing or damaged; the message names the run and the file
            relative to it (the app shows it, and never shows server paths).
    """
    files = (run_dir / TEST_PREDICTIONS, run_dir / CLASSES)
    try:
        stamp = tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        missing = next(f for f in files if not f.is_file())
        raise RunError(
            f"{run_dir.name} has no test predictions: "
            f"{missing.relative_to(run_dir).as_posix()} is missing"
        ) from None
    return _read_predictions(str(run_dir), stamp)


@lru_cache(maxsize=8)  # a study reads its reference runs once per comparison
def _read_predictions(run_dir: str, stamp: tuple) -> dict[str, tuple[int, int]]:
    folder = Path(run_dir)

    def damaged(why: str) -> RunError:
        return RunError(f"{folder.name}'s test predictions cannot be read: {why}")

    try:
        names = read_json(folder / CLASSES)
    except CnnlabError:
        raise damaged(f"{CLASSES} is not valid JSON") from None
    if not isinstance(names, list):
        raise damaged(f"{CLASSES} is not a list of class names")
    classes = {str(name): i for i, name in enumerate(names)}
    try:
        with (folder / TEST_PREDICTIONS).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            lacking = [c for c in ("path", "true", "pred") if c not in (reader.fieldnames or [])]
            if lacking:
                raise damaged(f"{TEST_PREDICTIONS} has no {', '.join(lacking)} column(s)")
            rows = [(r["path"], r["true"], r["pred"]) for r in reader]
            short = next((i for i, row in enumerate(rows, 1) if None in row), None)
            if short is not None:
                raise damaged(f"{TEST_PREDICTIONS} row {short} is cut short")
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise damaged(f"{TEST_PREDICTIONS}: {type(exc).__name__}") from None
    unknown = {c for _, *pair in rows for c in pair if c not in classes}
    if unknown:
        shown = ", ".join(repr(c) for c in sorted(unknown)[:3])
        raise damaged(f"{TEST_PREDICTIONS} names classes not in {CLASSES}: {shown}")
    return {path: (classes[true], classes[pred]) for path, true, pred in rows}


def unscored(run_dir: Path) -> str | None:
    """Why the run's test predictions cannot be paired (missing or damaged), or None."""
    try:
        predictions(run_dir)
    except RunError as exc:
        return str(exc)
    return None


def paired_predictions(
    pairs: list[tuple[Path, Path]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Labels ``(images,)`` and predictions ``(pairs, images)`` of run-folder pairs ``(a, b)``
    on the test images every run has; None without pairs or common images. A study pairs its
    cells by seed; the app's Compare page pairs the runs it groups the same way. Callers
    leave out the runs :func:`unscored` names (this raises RunError on them)."""
    if not pairs:
        return None
    preds = [(predictions(a), predictions(b)) for a, b in pairs]
    common = set.intersection(*(set(pa) & set(pb) for pa, pb in preds))
    images = sorted(common)
    if not images:
        return None
    y = np.array([preds[0][0][p][0] for p in images])
    a = np.array([[pa[p][1] for p in images] for pa, _ in preds])
    b = np.array([[pb[p][1] for p in images] for _, pb in preds])
    return y, a, b


def paired_arrays(
    runs_a: list[RunRecord], runs_b: list[RunRecord]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]] | None:
    """Labels and (seeds, images) predictions of two cells on their common seeds and images;
    a seed whose run in either cell has no readable test predictions is left out
    (:func:`unscored`: the report says which)."""
    by_seed_b = {r.seed: r for r in runs_b}
    pairs = [(a, by_seed_b[a.seed]) for a in runs_a if a.seed in by_seed_b]
    pairs = [(a, b) for a, b in pairs if unscored(a.path) is None and unscored(b.path) is None]
    found = paired_predictions([(a.path, b.path) for a, b in pairs])
    return None if found is None else (*found, [a.seed for a, _ in pairs])


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Rows as CSV, atomically; floats keep full precision, NaN stays empty."""
    columns = columns or (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        )
    atomic_write_text(path, buffer.getvalue())
