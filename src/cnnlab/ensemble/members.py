"""Ensemble members: finished runs, their saved probabilities, and the checks that they fit.

Members may differ in architecture, input size and preprocessing, but must be scored on the
same images: same classes in the same order, and the same split. The split is compared by a
digest of ``split.csv``'s rows (sorted, so row order and line endings do not matter); a
mismatch is an error naming the runs that differ. Each member's val and test probabilities
come from ``predictions/{split}_probs.npy``, written when the run finished: nothing is
predicted again. A member must still be able to predict later (``cnnlab predict`` on the
ensemble), so its model card and the header of its weights file are checked when it is opened:
a damaged one is refused at build time, not at the first prediction.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import RunError
from cnnlab.runs import MODEL_CARD, PREDICTIONS, SPLIT, WEIGHTS, Run, load_run, probs_file

SPLITS = ("val", "test")
_CARD_INPUT = ("img_size", "resize", "channels", "mean", "std")  # what a Predictor reads


def split_digest(path: str | Path) -> str:
    """sha256 of a split file's ``path,label,split`` rows, sorted."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = sorted(f"{r['path']}\t{r['label']}\t{r['split']}" for r in csv.DictReader(fh))
    except FileNotFoundError:
        raise RunError(f"{path}: missing; a member needs the split it was scored on") from None
    except (KeyError, csv.Error, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not a split file (path,label,split): {exc}") from None
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


class LazyImages:
    """``images[i]`` decoded on demand: a worst-mistakes gallery reads only a few of them."""

    def __init__(self, get: Callable[[int], np.ndarray]) -> None:
        self.get = get

    def __getitem__(self, i: int) -> np.ndarray:
        return self.get(i)


@dataclass
class Scores:
    """One member's predictions on one split, rows in ``predictions/{split}.csv`` order."""

    paths: list[str]
    labels: np.ndarray  # int64 (N,)
    probs: np.ndarray  # float (N, K)


@dataclass
class Member:
    """A finished run used as an ensemble member."""

    run: Run
    classes: list[str]
    split_hash: str
    summary: dict[str, Any]
    scores: dict[str, Scores] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.name


def _read_scores(run: Run, split: str, classes: list[str]) -> Scores | None:
    table = run.path / PREDICTIONS / f"{split}.csv"
    if not table.is_file():
        return None
    npy = probs_file(run.path, split)
    if not npy.is_file():
        raise RunError(
            f"{npy}: missing (the run finished before cnnlab saved probabilities); "
            "train it again to use it in an ensemble"
        )
    with table.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    probs = np.load(npy, allow_pickle=False)
    if probs.shape != (len(rows), len(classes)):
        raise RunError(f"{npy}: shape {probs.shape}, expected ({len(rows)}, {len(classes)})")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[r["true"]] for r in rows], dtype=np.int64)
    return Scores([r["path"] for r in rows], labels, probs.astype(np.float64))


def check_can_predict(run: Run) -> None:
    """Refuse a run whose model card or weights file could not be loaded to predict.

    Building an ensemble loads no model, so without this a damaged ``model.json`` surfaced
    only at the ensemble's first prediction. Reads the card and the safetensors header only.

    Raises:
        RunError: naming the file and what is wrong with it.
    """
    from safetensors import SafetensorError, safe_open

    fix = "an ensemble member must be able to predict: train it again or restore the file"
    try:
        card = run.model_card
    except RunError as exc:
        raise RunError(f"{exc}; {fix}") from None
    inp = card.get("input") if isinstance(card, dict) else None
    kwargs = card.get("create_kwargs") if isinstance(card, dict) else None
    lacking = [f"input.{k}" for k in _CARD_INPUT if not isinstance(inp, dict) or k not in inp]
    if not isinstance(kwargs, dict) or not kwargs.get("name"):
        lacking.append("create_kwargs.name")
    if lacking:
        raise RunError(f"{run.path / MODEL_CARD}: no {', '.join(lacking)}; {fix}")
    try:
        with safe_open(run.path / WEIGHTS, framework="numpy") as fh:
            fh.keys()
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{run.path / WEIGHTS}: unreadable ({exc}); {fix}") from None


def load_member(run_dir: str | Path) -> Member:
    """Open a finished run with its saved val/test scores.

    Raises:
        RunError: not a finished run, no split, a damaged model card or weights file, or
            saved scores that do not fit its classes.
    """
    run = load_run(run_dir)
    check_can_predict(run)
    if not (run.path / SPLIT).is_file():
        raise RunError(f"{run.path / SPLIT}: missing; an ensemble member needs its split")
    classes = run.classes
    member = Member(run, classes, split_digest(run.path / SPLIT), run.summary)
    for split in SPLITS:
        scores = _read_scores(run, split, classes)
        if scores is not None:
            member.scores[split] = scores
    return member


def _align(reference: Scores, other: Scores, who: str, split: str) -> Scores:
    """``other`` reordered to ``reference``'s rows (same images, maybe another order)."""
    if other.paths == reference.paths:
        return other
    where = {p: i for i, p in enumerate(other.paths)}
    missing = [p for p in reference.paths if p not in where]
    if missing or len(where) != len(reference.paths):
        raise RunError(
            f"{who}: its {split} predictions cover other images than the first member's "
            f"(e.g. {(missing or sorted(set(where) - set(reference.paths)))[:3]})"
        )
    order = np.array([where[p] for p in reference.paths])
    return Scores(reference.paths, other.labels[order], other.probs[order])


def check_members(members: list[Member]) -> None:
    """Same classes, same split, same scored images; duplicates refused.

    Raises:
        RunError: naming the runs that do not match and how.
    """
    if len(members) < 2:
        raise RunError(f"an ensemble needs at least two runs, got {len(members)}")
    seen: dict[Path, str] = {}
    first = members[0]
    for m in members:
        key = m.run.path.resolve()
        if key in seen:
            raise RunError(f"{m.run.path}: given twice (also as {seen[key]})")
        seen[key] = str(m.run.path)
        if m.classes != first.classes:
            raise RunError(
                f"{m.name} has classes {m.classes}, {first.name} has {first.classes}: "
                "members must share classes (same names, same order)"
            )
        if m.split_hash != first.split_hash:
            raise RunError(
                f"{m.name} and {first.name} were scored on different splits "
                f"(split.csv digests {m.split_hash[:12]} vs {first.split_hash[:12]}); train "
                f"members with data.split_file={first.run.path / SPLIT}"
            )
        for split in SPLITS:
            if (split in m.scores) != (split in first.scores):
                has, lacks = (m, first) if split in m.scores else (first, m)
                raise RunError(
                    f"{lacks.name} has no {split} predictions ({lacks.run.path / PREDICTIONS}/"
                    f"{split}.csv missing) but {has.name} has: members must be scored on the "
                    "same splits"
                )
            if split in m.scores:
                m.scores[split] = _align(first.scores[split], m.scores[split], m.name, split)


def stacked(members: list[Member], split: str) -> tuple[np.ndarray, Scores] | None:
    """``(probs (M, N, K), first member's scores)`` for ``split``, or None if absent."""
    if split not in members[0].scores:
        return None
    return np.stack([m.scores[split].probs for m in members]), members[0].scores[split]
