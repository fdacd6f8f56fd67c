"""Train/val/test splits made per class, seeded, stable, and saved once per study.

Each file's split is decided by a keyed hash of (``data.split_seed``, class, path) compared
against the fractions, so adding images to a folder never moves an existing image to another
split (a rank- or shuffle-based split would). The fractions hold per class on average, not
exactly (each file is its own draw). A small fix-up then makes sure every class has
at least one image in each requested split; where it moves a file, that decision is remembered
in the split ledger (:mod:`cnnlab.data.ledger`), so the fix-up never undoes itself when more
images arrive. The training seed plays no part: a seed sweep compares models on one test set.

Example:
    >>> split = make_split(scan, val_fraction=0.15, test_fraction=0.15, seed=42)  # doctest: +SKIP
    >>> save_split(split, "runs/x/split.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.atomic import atomic_path
from cnnlab.data.ledger import ledger_key, load_ledger, save_ledger
from cnnlab.data.problems import Problem, raise_blocking
from cnnlab.data.scan import Record, ScanResult
from cnnlab.errors import DataError

SPLITS = ("train", "val", "test")
# split.csv's columns; files written before sha1 existed have only the first three
SPLIT_COLUMNS = ("path", "label", "split", "sha1")


@dataclass(frozen=True)
class Sample:
    """One image of the split: path relative to the scan root, class index, split name, and
    the SHA-1 of its bytes when it was scanned (the scan's ``Record.sha1``; empty if unknown),
    which ``split.csv`` keeps so ``cnnlab eval`` can tell a test image rewritten since."""

    path: str
    label: int
    split: str
    sha1: str = ""


@dataclass
class Split:
    """Class names (index = label) and every sample with its split."""

    classes: list[str]
    samples: list[Sample]
    dropped: list[str] = field(default_factory=list)  # classes left out (drop_small_classes)
    new_files: int = 0  # files in the folder but not in a reused split.csv
    problems: list[Problem] = field(default_factory=list)  # blocking ones stop training
    warnings: list[str] = field(default_factory=list)  # for the caller to print

    def indices(self, split: str) -> list[int]:
        """Positions in ``samples`` of one split's images."""
        return [i for i, s in enumerate(self.samples) if s.split == split]

    def paths(self, split: str | None = None) -> list[str]:
        return [s.path for s in self.samples if split is None or s.split == split]

    def labels(self, split: str | None = None) -> list[int]:
        return [s.label for s in self.samples if split is None or s.split == split]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {class: n}}`` for reports."""
        out: dict[str, dict[str, int]] = {s: dict.fromkeys(self.classes, 0) for s in SPLITS}
        for s in self.samples:
            out[s.split][self.classes[s.label]] += 1
        return out


def _unit(seed: int, label: str, path: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, class, path) alone."""
    digest = hashlib.blake2b(f"{seed}\0{label}\0{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _by_hash(u: float, fractions: dict[str, float]) -> str:
    """test takes [0, t), val [t, t + v), train the rest."""
    if u < fractions["test"]:
        return "test"
    return "val" if u < fractions["test"] + fractions["val"] else "train"


def _assign(
    recs: list[Record],
    fractions: dict[str, float],
    seed: int,
    remembered: dict[str, tuple[str, str]],
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Split one class's records by hash, keep remembered fix-ups, fill empty splits.

    Returns the assignment and the fix-up moves made now (to remember). A split that had an
    image keeps it when images are added, so the fix-up only runs for a class being split
    for the first time, or one that lost files; it takes the files nearest the empty range,
    and a remembered file only when nothing else can fill the gap.
    """
    u = {r.path: _unit(seed, r.label, r.path) for r in recs}
    out = {r.path: _by_hash(u[r.path], fractions) for r in recs}
    pinned = set()
    for r in recs:
        label, split = remembered.get(r.path, ("", ""))
        if label == r.label and (split == "train" or fractions.get(split, 0.0) > 0):
            out[r.path] = split
            pinned.add(r.path)
    ranges = {
        "test": (0.0, fractions["test"]),
        "train": (sum(fractions.values()), 1.0),
        "val": (fractions["test"], fractions["test"] + fractions["val"]),
    }
    moved: dict[str, tuple[str, str]] = {}
    for name in ("train", "test", "val"):
        if (name != "train" and fractions[name] == 0) or name in out.values():
            continue
        sizes = Counter(out.values())
        donor = max(sizes, key=lambda k: (sizes[k], k))
        if sizes[donor] > 1:
            mid = sum(ranges[name]) / 2
            pool = [p for p, v in out.items() if v == donor]
            pick = min(pool, key=lambda p: (p in pinned, abs(u[p] - mid)))
            out[pick] = name
            moved[pick] = (recs[0].label, name)
    return out, moved


def _small(label: str, n: int, need: int, drop: bool) -> Problem | None:
    if n >= need:
        return None
    if drop:
        return Problem(
            "dropped class",
            f"class '{label}' has {n} image(s), fewer than the {need} needed; dropped",
            blocking=False,
        )
    return Problem(
        "small class",
        f"class '{label}' has {n} image(s) but the split needs at least {need} "
        "(one per split); add images, lower data.val_fraction/test_fraction, "
        "or set data.drop_small_classes=true",
    )


def make_split(
    scan: ScanResult,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    drop_small_classes: bool = False,
    strict: bool = True,
) -> Split:
    """Assign every record of ``scan`` to train, val or test, per class (fractions on average).

    Explicit splits (split folders, a CSV split column) are kept; when there is no val split,
    val is carved out of train the same hashed way (test too when there is no test split).

    Args:
        scan: the scanned dataset.
        val_fraction, test_fraction: share of each class held out.
        seed: the split seed (``data.split_seed``), never the training seed.
        drop_small_classes: leave classes too small to split out instead of failing.
        strict: raise the blocking problems; False returns them in ``.problems``.

    Raises:
        DataError: the fractions leave nothing to train on; with ``strict``, also a class
            too small for the split (unless ``drop_small_classes``) or without training
            images, all in one message.
    """
    if val_fraction + test_fraction >= 1.0:
        raise DataError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction} "
            "leaves nothing to train on; keep their sum below 1"
        )
    by_class: dict[str, list[Record]] = defaultdict(list)
    for r in scan.records:
        by_class[r.label].append(r)
    warnings: list[str] = []
    key = ledger_key(scan.manifest or scan.root, seed, val_fraction, test_fraction)
    remembered = load_ledger(key, warnings)
    explicit = {r.split for r in scan.records if r.split}
    # Carve val when the layout has none; carve test only when it has neither.
    fractions = {
        "val": 0.0 if "val" in explicit else val_fraction,
        "test": 0.0 if explicit & {"val", "test"} else test_fraction,
    }
    assigned, problems, moved = _assign_classes(
        by_class, fractions, seed, drop_small_classes, remembered
    )
    if moved:
        save_ledger(key, {**remembered, **moved}, warnings)
    classes = sorted(assigned)
    dropped = sorted(set(by_class) - set(assigned))
    index = {c: i for i, c in enumerate(classes)}
    samples = [
        Sample(r.path, index[r.label], assigned[r.label][r.path], r.sha1)
        for r in scan.records
        if r.label in index
    ]
    problems += _check_train(classes, samples, scan.manifest)
    warnings += [p.message for p in problems if not p.blocking]
    if strict:
        raise_blocking(problems, scan.manifest or scan.root)
    return Split(classes, samples, dropped, problems=problems, warnings=warnings)


def _assign_classes(
    by_class: dict[str, list[Record]],
    fractions: dict[str, float],
    seed: int,
    drop_small: bool,
    remembered: dict[str, tuple[str, str]],
) -> tuple[dict[str, dict[str, str]], list[Problem], dict[str, tuple[str, str]]]:
    """Per class: ``{path: split}`` (small classes left out), problems, fix-up moves."""
    assigned: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    moved: dict[str, tuple[str, str]] = {}
    need = 1 + sum(f > 0 for f in fractions.values())
    for label, recs in sorted(by_class.items()):
        carve = [r for r in recs if r.split in (None, "train")]
        small = _small(label, len(carve), need, drop_small) if carve else None
        if small is not None:
            problems.append(small)
            continue
        assigned[label] = {r.path: r.split for r in recs if r.split not in (None, "train")}
        if carve:
            out, now = _assign(carve, fractions, seed, remembered)
            assigned[label].update(out)
            moved.update(now)
    return assigned, problems, moved


def _check_train(
    classes: list[str], samples: list[Sample], manifest: Path | None = None
) -> list[Problem]:
    """A class with no image in train: a split layout lacks its train/ folder, a manifest
    gives none of its rows split=train; the fix says which."""
    have = Counter(s.label for s in samples if s.split == "train")
    fix = (
        f"set split=train on some of its rows in {manifest.name}" if manifest
        else "add some to train/"
    )  # fmt: skip
    problems = [
        Problem("no training images", f"class '{c}' has no training images; {fix}")
        for i, c in enumerate(classes)
        if have[i] == 0
    ]
    if not classes:
        problems.append(
            Problem("no classes", "no class left to train on; add images or lower the fractions")
        )
    return problems


def save_split(split: Split, path: str | os.PathLike[str]) -> Path:
    """Write ``split.csv``: path,label,split with the class NAME (so indices cannot drift) and
    sha1, each file's bytes as scanned (so a later eval can tell an image rewritten in place).

    The sha1 is the one the scan computed while decoding: no file is read again here.
    """
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SPLIT_COLUMNS)
        for s in split.samples:
            writer.writerow([s.path, split.classes[s.label], s.split, s.sha1])
    return path


def _some(paths: list[str], shown: int) -> str:
    """The first ``shown`` paths, and how many more there are."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def load_split(path: str | os.PathLike[str], scan: ScanResult) -> Split:
    """Reuse a saved split exactly; files gone from the folder are an error, new ones ignored.

    Each sample takes its sha1 from this scan (the bytes this run trains on), not the file's.
    A file whose bytes differ from the sha1 the split recorded (rewritten in place since the
    split was made) gets a warning naming how many and a few: runs made before and after it,
    a study's cells among them, were not trained and tested on the same images.

    Raises:
        DataError: the file is unreadable, or lists files the scan no longer has as usable,
            or a file's class differs from the folder's.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the split file ({exc})") from None
    if rows and not {"path", "label", "split"} <= set(rows[0]):
        raise DataError(f"{path}: not a split file; expected columns path,label,split")
    have = {r.path: r.label for r in scan.records}
    sha = {r.path: r.sha1 for r in scan.records}
    missing = [row["path"] for row in rows if row["path"] not in have]
    if missing:
        shown = _some(missing, 10)
        raise DataError(
            f"{path}: {len(missing)} file(s) of the saved split are missing or "
            f"unreadable now: {shown}; restore them or make a new split"
        )
    moved = [row["path"] for row in rows if have[row["path"]] != row["label"]]
    if moved:
        raise DataError(
            f"{path}: {len(moved)} file(s) changed class since the split was made "
            f"(e.g. {moved[0]}); make a new split"
        )
    rewritten = [r["path"] for r in rows if r.get("sha1") and r["sha1"] != sha[r["path"]]]
    if rewritten:
        shown = _some(rewritten, 3)
        from cnnlab.console import warn

        warn(
            f"{path}: {len(rewritten)} file(s) changed since the split was made (other bytes "
            f"than its sha1): {shown}; runs made before and after were not trained and tested "
            "on the same images"
        )
    bad = {row["split"] for row in rows} - set(SPLITS)
    if bad:
        raise DataError(f"{path}: unknown split name(s) {sorted(bad)}; use train, val, test")
    classes = sorted({row["label"] for row in rows})
    index = {c: i for i, c in enumerate(classes)}
    samples = [
        Sample(row["path"], index[row["label"]], row["split"], sha[row["path"]]) for row in rows
    ]
    return Split(classes, samples, new_files=len(have) - len(rows))
