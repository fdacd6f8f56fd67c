"""Train/val/test splits that are stratified, seeded, stable, and saved once per study.

Each file's split is decided by a keyed hash of (seed, class, path) compared against the
fractions, so adding images to a folder never moves an existing image to another split (a
rank- or shuffle-based split would). A small fix-up then makes sure every class has at least
one image in each requested split; it only ever moves the files closest to a split's edge.

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

from cnnlab.console import warn
from cnnlab.data.scan import Record, ScanResult
from cnnlab.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One image of the split: path relative to the scan root, class index, split name."""

    path: str
    label: int
    split: str


@dataclass
class Split:
    """Class names (index = label) and every sample with its split."""

    classes: list[str]
    samples: list[Sample]
    dropped: list[str] = field(default_factory=list)  # classes left out (drop_small_classes)
    new_files: int = 0  # files in the folder but not in a reused split.csv

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


def _assign(recs: list[Record], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Split one class's records by hash thresholds, then fill empty requested splits."""
    u = {r.path: _unit(seed, r.label, r.path) for r in recs}
    out: dict[str, str] = {}
    for r in recs:
        edge = 0.0
        out[r.path] = "train"
        for name in ("test", "val"):  # test takes [0, t), val [t, t + v)
            if u[r.path] < edge + fractions[name]:
                out[r.path] = name
                break
            edge += fractions[name]
    ranges = {
        "test": (0.0, fractions["test"]),
        "train": (sum(fractions.values()), 1.0),
        "val": (fractions["test"], fractions["test"] + fractions["val"]),
    }
    for name in ("train", "test", "val"):
        if (name != "train" and fractions[name] == 0) or name in out.values():
            continue
        sizes = Counter(out.values())
        donor = max(sizes, key=lambda k: (sizes[k], k))
        if sizes[donor] > 1:  # move the donor's file whose hash lies nearest this range
            mid = sum(ranges[name]) / 2
            pick = min((p for p, v in out.items() if v == donor), key=lambda p: abs(u[p] - mid))
            out[pick] = name
    return out


def _too_small(label: str, n: int, need: int, drop: bool) -> bool:
    if n >= need:
        return False
    if drop:
        warn(f"class '{label}' has {n} image(s), fewer than the {need} needed; dropped")
        return True
    raise DataError(
        f"class '{label}' has {n} image(s) but the split needs at least {need} "
        "(one per split); add images, lower data.val_fraction/test_fraction, "
        "or set data.drop_small_classes=true"
    )


def make_split(
    scan: ScanResult,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    drop_small_classes: bool = False,
) -> Split:
    """Assign every record of ``scan`` to train, val or test, stratified per class.

    Explicit splits (split folders, a CSV split column) are kept; when there is no val split,
    val is carved out of train the same hashed way (test too when there is no test split).

    Raises:
        DataError: a class is too small for the requested split (unless
            ``drop_small_classes``), or a class has no training images.
    """
    if val_fraction + test_fraction >= 1.0:
        raise DataError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction} "
            "leaves nothing to train on; keep their sum below 1"
        )
    by_class: dict[str, list[Record]] = defaultdict(list)
    for r in scan.records:
        by_class[r.label].append(r)
    explicit = {r.split for r in scan.records if r.split}
    assigned: dict[str, str] = {}
    dropped: list[str] = []
    for label in sorted(by_class):
        recs = by_class[label]
        carve = [r for r in recs if r.split in (None, "train")]
        # Carve val when the layout has none; carve test only when it has neither.
        fractions = {
            "val": 0.0 if "val" in explicit else val_fraction,
            "test": 0.0 if explicit & {"val", "test"} else test_fraction,
        }
        need = 1 + sum(f > 0 for f in fractions.values())
        if _too_small(label, len(carve), need, drop_small_classes):
            dropped.append(label)
            continue
        assigned.update({r.path: r.split for r in recs if r.split not in (None, "train")})
        assigned.update(_assign(carve, fractions, seed))
    classes = sorted(label for label in by_class if label not in dropped)
    index = {c: i for i, c in enumerate(classes)}
    samples = [
        Sample(r.path, index[r.label], assigned[r.path]) for r in scan.records if r.label in index
    ]
    _check_train(classes, samples)
    return Split(classes, samples, dropped)


def _check_train(classes: list[str], samples: list[Sample]) -> None:
    have = Counter(s.label for s in samples if s.split == "train")
    missing = [c for i, c in enumerate(classes) if have[i] == 0]
    if missing:
        raise DataError(
            f"class(es) {', '.join(missing)} have no training images; "
            "add images to the train folder"
        )
    if not classes:
        raise DataError("no class left to train on; add images or lower the split fractions")


def save_split(split: Split, path: str | os.PathLike[str]) -> Path:
    """Write ``split.csv`` (path,label,split with the class NAME, so indices cannot drift)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        for s in split.samples:
            writer.writerow([s.path, split.classes[s.label], s.split])
    os.replace(tmp, path)
    return path


def load_split(path: str | os.PathLike[str], scan: ScanResult) -> Split:
    """Reuse a saved split exactly; files gone from the folder are an error, new ones ignored.

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
    missing = [row["path"] for row in rows if row["path"] not in have]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
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
    bad = {row["split"] for row in rows} - set(SPLITS)
    if bad:
        raise DataError(f"{path}: unknown split name(s) {sorted(bad)}; use train, val, test")
    classes = sorted({row["label"] for row in rows})
    index = {c: i for i, c in enumerate(classes)}
    samples = [Sample(row["path"], index[row["label"]], row["split"]) for row in rows]
    return Split(classes, samples, new_files=len(have) - len(rows))
