"""Compare page logic: runs grouped into cells, each cell's spread over seeds, and paired
verdicts against the best cell, with :mod:`cnnlab.studies.stats` (the studies' statistics).

A cell is the runs that differ only by seed, as a study's cell is: their resolved
configurations (``config.yaml``) are equal once the seed and what only records a run (its
name, folder, tracking, caches, report extras; :data:`RECORDING`) are left out, and they were
tested on the same images (the dataset folder and the test rows of ``split.csv``). A cell is
labelled by its model and mode, then by the settings that differ between the cells, in the
studies' words (:func:`cnnlab.studies.plan.label_for`).

Like a study, the cell with the best mean validation accuracy is the reference; every other
cell on the same test images is compared with it, seeds paired (seed ``k`` of one cell with
seed ``k`` of the other, each run once; two one-run cells pair directly), with a paired
bootstrap CI of the accuracy difference and the exact McNemar test, Holm-adjusted: the
studies' own paired arrays and comparison (:mod:`cnnlab.studies.results`,
:mod:`cnnlab.studies.compare`). A cell on other test images is not compared.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.config import dotted
from cnnlab.errors import CnnlabError
from cnnlab.runs import CLASSES, CONFIG, SPLIT, SUMMARY, Run, list_runs, read_json
from cnnlab.studies import stats

GROUPINGS = ("same settings", "each run")
# Config keys that say where and how a run was recorded, not what was trained or measured:
# runs that differ only in these and the seed are repeats of one setting. data.split_file is
# a path; which images a run was tested on is compared by content instead (test_set).
RECORDING = (
    "name", "runs_dir", "train.seed", "data.split_file", "data.cache", "data.num_workers",
    "data.audit", "eval.top_k", "eval.ece_bins", "eval.worst_mistakes", "eval.plot_processes",
    "eval.explain", "eval.embedding", "track.", "cache.",
)  # fmt: skip
PATHS = ("data.root", "data.exclude", "model.weights")  # labelled by their last part only
NOT_COMPARED = {
    "test set": "tested on other images (another dataset or split)",
    "seeds": "no seed in common",
    "images": "no test image in common",
}


def _unreadable(run: Run) -> str | None:
    """The first file the page reads from ``run`` that cannot be read, or None."""
    import yaml

    for name, kind in ((SUMMARY, dict), (CONFIG, dict), (CLASSES, list)):
        try:
            value = run.config if name == CONFIG else read_json(run.path / name)
        except (CnnlabError, yaml.YAMLError):
            return name
        if not isinstance(value, kind):
            return name
    return None


def finished_runs(runs_dir: Path) -> tuple[list[Run], dict[str, str]]:
    """The finished runs and ensembles in ``runs_dir``, oldest first (the summary's
    ``complete``), and those left out because a file the page reads is damaged (run name ->
    file name). A run still training, or killed, has no summary and is not listed. A run
    whose weights were deleted stays: its saved predictions are what is compared (the
    leaderboard marks it damaged because it can no longer predict)."""
    runs, unreadable = [], {}
    for run in list_runs(runs_dir) if runs_dir.is_dir() else []:
        if not (run.path / SUMMARY).is_file():
            continue
        bad = _unreadable(run)
        if bad is not None:
            unreadable[run.name] = bad
        elif run.summary.get("complete"):
            runs.append(run)
    return runs, unreadable


def _seed(run: Run) -> int | None:
    try:
        return (run.config.get("train") or {}).get("seed")
    except CnnlabError:
        return None


def _recording(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RECORDING)


def settings(run: Run) -> dict[str, Any]:
    """The run's resolved configuration as dotted keys, without the seed and the keys that
    only record the run (:data:`RECORDING`); a mode left to the model's default is the one
    the run trained in (its summary's)."""
    found = {k: v for k, v in dotted(run.config or {}).items() if not _recording(k)}
    if "model.name" in found and found.get("model.mode") is None:
        with contextlib.suppress(CnnlabError):
            found["model.mode"] = run.summary.get("mode")
    return found


@lru_cache(maxsize=256)
def _test_rows_digest(split_file: str, stamp: tuple[int, int]) -> str:
    with open(split_file, newline="", encoding="utf-8") as fh:
        rows = sorted(f"{r['path']}\0{r['label']}" for r in csv.DictReader(fh)
                      if r.get("split") == "test")  # fmt: skip
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_set(run: Run) -> str:
    """Which images the run was tested on: a digest of its dataset folder and the test rows of
    its ``split.csv``; empty when they cannot be read."""
    file = run.path / SPLIT
    try:
        root = str((run.config.get("data") or {}).get("root") or "")
        info = file.stat()
        rows = _test_rows_digest(str(file), (info.st_mtime_ns, info.st_size))
    except (CnnlabError, OSError, KeyError, csv.Error, UnicodeDecodeError):
        return ""
    return hashlib.sha256(f"{root}\0{rows}".encode()).hexdigest()[:16]


def _shown(key: str, value: Any) -> Any:
    if value is None:
        return "default"
    return Path(str(value)).name if key in PATHS else value


def _labels(groups: list[list[Run]]) -> list[str]:
    """``model / mode``, then the settings that differ between the cells (``lr=0.01``); an
    ensemble is ``ensemble / method: NAME``."""
    from cnnlab.studies.plan import label_for

    found = [settings(g[0]) for g in groups]
    trained = [s for s in found if "ensemble.method" not in s]
    keys = sorted({k for s in trained for k in s} - {"model.name", "model.mode"})
    varied = [k for k in keys if len({json.dumps(s.get(k), default=str) for s in trained}) > 1]
    labels = []
    for group, values in zip(groups, found, strict=True):
        if "ensemble.method" in values:
            labels.append(f"ensemble / {values['ensemble.method']}: {group[0].name}")
            continue
        label = f"{values.get('model.name')} / {values.get('model.mode')}"
        if varied:
            label += ", " + label_for({k: _shown(k, values.get(k)) for k in varied})
        labels.append(label)
    return [f"{x} [{g[0].name}]" if labels.count(x) > 1 else x
            for x, g in zip(labels, groups, strict=True)]  # fmt: skip


def cells(runs: list[Run], grouping: str) -> dict[str, list[Run]]:
    """Cell label -> its runs (sorted by seed): runs with equal settings and test images, or
    each run alone."""
    if grouping == "each run":
        return {run.name: [run] for run in runs}
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps([settings(run), test_set(run)], sort_keys=True, default=str)
        by_key.setdefault(key, []).append(run)
    groups = [sorted(g, key=lambda r: (_seed(r) is None, _seed(r) or 0)) for g in by_key.values()]
    return dict(zip(_labels(groups), groups, strict=True))


def _metric(run: Run, split: str, key: str) -> float:
    value = ((run.summary.get("metrics") or {}).get(split) or {}).get(key)
    return math.nan if value is None else float(value)


def _seeds_text(runs: list[Run]) -> str:
    return ", ".join("-" if _seed(r) is None else str(_seed(r)) for r in runs)


def spread_rows(groups: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """Per cell: its runs and seeds, and mean, std and 95% CI over seeds of test accuracy and
    macro F1 (validation accuracy: mean and std)."""
    rows = []
    for label, runs in groups.items():
        row: dict[str, Any] = {"cell": label, "runs": len(runs), "seeds": _seeds_text(runs)}
        for split, key in (("val", "accuracy"), ("test", "accuracy"), ("test", "macro_f1")):
            s = stats.spread([_metric(r, split, key) for r in runs])
            name = f"{split} {key}"
            row.update({name: s.mean, f"{name} std": s.std})
            if split == "test":  # a t-interval over few seeds cannot leave [0, 1] (as a study's)
                low, high = np.clip([s.ci_low, s.ci_high], 0.0, 1.0)
                row.update({f"{name} CI low": float(low), f"{name} CI high": float(high)})
        rows.append(row)
    return rows


def seed_pairs(a: list[Run], b: list[Run]) -> list[tuple[Run, Run]]:
    """Seed ``k`` of ``a`` with seed ``k`` of ``b``, each run in at most one pair; two
    one-run cells pair directly, whatever their seeds."""
    if len(a) == 1 and len(b) == 1:
        return [(a[0], b[0])]
    left = list(b)
    pairs = []
    for run in a:
        seed = _seed(run)
        match = next((r for r in left if seed is not None and _seed(r) == seed), None)
        if match is not None:
            left.remove(match)
            pairs.append((run, match))
    return pairs


def _unscored(pairs: list[tuple[Run, Run]]) -> dict[str, str]:
    """Run name -> why its test predictions cannot be paired, for the runs of ``pairs``."""
    from cnnlab.studies.results import unscored

    found = {run.name: unscored(run.path) for pair in pairs for run in pair}
    return {name: why for name, why in found.items() if why is not None}


def _scored_pairs(a: list[Run], b: list[Run]) -> list[tuple[Run, Run]]:
    pairs = seed_pairs(a, b)
    bad = _unscored(pairs)
    return [(x, y) for x, y in pairs if x.name not in bad and y.name not in bad]


def paired_arrays(a: list[Run], b: list[Run]) -> tuple[np.ndarray, ...] | None:
    """Labels ``(images,)`` and predictions ``(pairs, images)`` of two cells, or None.

    Runs paired as :func:`seed_pairs` says, less the pairs with a run whose test predictions
    are missing or damaged; the arrays are built by the studies code
    (:func:`cnnlab.studies.results.paired_predictions`) from each run's test predictions.
    """
    from cnnlab.studies.results import paired_predictions

    return paired_predictions([(x.path, y.path) for x, y in _scored_pairs(a, b)])


def _compare(a: list[Run], b: list[Run]) -> dict[str, Any]:
    """One cell against the reference: the paired difference, or why there is none. A run
    whose test predictions cannot be read leaves its pair out, and ``left out`` says why."""
    from cnnlab.studies.compare import paired_difference

    def missing(why: str) -> dict[str, Any]:
        return {"seeds": 0, "images": 0, "p_mcnemar": math.nan, "why": why}

    if not test_set(a[0]) or test_set(a[0]) != test_set(b[0]):
        return missing(NOT_COMPARED["test set"])
    bad = _unscored(seed_pairs(a, b))
    left_out = "; ".join(bad.values())
    pairs = _scored_pairs(a, b)
    arrays = paired_arrays(a, b) if pairs else None
    if arrays is None:
        return missing(NOT_COMPARED["images"] if pairs else left_out or NOT_COMPARED["seeds"])
    found = paired_difference(arrays, len(b[0].classes))
    named = ", ".join(f"{x.name} ~ {y.name}" for x, y in pairs)
    return {**found, "paired runs": named, **({"left out": left_out} if left_out else {})}


def _natural(name: str) -> list[Any]:
    """``c2-seed42`` before ``c10-seed42``: digits compare as numbers."""
    import re

    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def verdict_rows(groups: dict[str, list[Run]], spread: list[dict[str, Any]]) -> list[dict]:
    """Each cell against the best one (by mean validation accuracy, among the cells with a run
    whose test predictions can be read), Holm-adjusted, with the studies' own comparison
    (:func:`cnnlab.studies.compare.paired_difference`).

    ``pairs`` is the number of run pairs a row rests on (``paired runs`` names them; ``left out``
    says which runs' test predictions could not be read); a row whose cells cannot be paired
    has 0 and says why (``why``: another test set, no seed in common, or the runs whose test
    predictions are missing or damaged), and its verdict is ``not compared``.
    """
    from cnnlab.studies.compare import add_verdicts, reference

    if len(spread) < 2:
        return []
    from cnnlab.studies.results import unscored

    # a cell none of whose runs can be paired cannot be the reference: nothing would be compared
    able = [r for r in spread if any(unscored(x.path) is None for x in groups[r["cell"]])]
    # Ties go to the first cell in a study's order (c1, c2, ..., c10: its run names sorted
    # naturally), not to the first run folder listed, which a copy may reorder.
    able = sorted(able or spread, key=lambda r: _natural(groups[r["cell"]][0].name))
    table = [{"cell": r["cell"], "n": r["runs"], "val_accuracy_mean": r["val accuracy"],
              "test_accuracy_mean": r["test accuracy"]} for r in able]  # fmt: skip
    best = able[table.index(reference(table)[0])]  # the study's choice, ties broken alike
    rows = []
    for row in (r for r in spread if r is not best):
        found = _compare(groups[row["cell"]], groups[best["cell"]])
        rows.append({"cell": row["cell"], "reference": best["cell"], **found})
    add_verdicts(rows)
    return [{"cell": r.pop("cell"), "reference": r.pop("reference"), "pairs": r.pop("seeds"), **r}
            for r in rows]  # fmt: skip
