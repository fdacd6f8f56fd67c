"""``data.exclude``: leave the files a CSV lists out of a run, without touching the dataset.

The list is any CSV with a ``path`` column of paths relative to the dataset root; the
``issues.csv`` that ``cnnlab data issues`` writes is one. Files are removed from the split
after it is made, so every other image keeps the split it has without the exclusion, and a
run with the exclusion is compared with one without it on the same remaining test images.

:func:`apply_exclude` is the one place the list is applied: ``check_dataset`` calls it before
the audit, so ``cnnlab data inspect`` and training count, audit and judge the same images. A
class the list leaves without training images is a blocking problem (``excluded class``),
unless ``data.drop_small_classes`` asks to leave that class out. One left without val or test
images is warned by :func:`cnnlab.data.check.unmeasured_classes`, as any class without them
is (its scores there cannot be measured; training still works).
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.data.problems import Problem
from cnnlab.errors import DataError

if TYPE_CHECKING:
    from cnnlab.data.scan import Record, ScanResult
    from cnnlab.data.split import Sample, Split

SPLITS = ("train", "val", "test")


@dataclass
class Excluded:
    """The scan and split without the listed files, and what that did."""

    scan: ScanResult  # records of the listed files removed
    split: Split
    records: list[Record] = field(default_factory=list)  # the files left out
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # for the caller to print (info)
    warnings: list[str] = field(default_factory=list)


def read_excluded(path: str | Path) -> set[str]:
    """The ``path`` column of a CSV, as POSIX paths.

    Raises:
        DataError: the file cannot be read or has no ``path`` column.
    """
    file = Path(path)
    try:
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "path" not in (reader.fieldnames or []):
                raise DataError(f"{file}: data.exclude needs a CSV with a 'path' column")
            return {row["path"].strip().replace("\\", "/") for row in reader if row["path"]}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{file}: cannot read the data.exclude list ({exc})") from None


def apply_exclude(
    scan: ScanResult, split: Split, path: str | Path, drop_classes: bool = False
) -> Excluded:
    """``scan`` and ``split`` without the files listed in the CSV at ``path``.

    Args:
        scan, split: the dataset as scanned and split without the exclusion.
        path: the CSV (``data.exclude``).
        drop_classes: ``data.drop_small_classes``: a class the list empties is left out
            (a warning) instead of being a blocking problem.

    Raises:
        DataError: the list names files, but none of them is in this dataset (it was most
            likely made for another one).
    """
    listed = read_excluded(path)
    gone = [r for r in scan.records if r.path in listed]
    if listed and not gone:
        raise DataError(
            f"{path}: none of its {len(listed)} paths is in this dataset; "
            "paths must be relative to the dataset root, as data issues writes them"
        )
    kept = [s for s in split.samples if s.path not in listed]
    out = Excluded(
        dataclasses.replace(scan, records=[r for r in scan.records if r.path not in listed]),
        dataclasses.replace(split, samples=kept),
        gone,
    )
    if gone:
        left = Counter(s.split for s in split.samples if s.path in listed)
        parts = ", ".join(f"{left[s]} {s}" for s in SPLITS if left[s])
        out.notes.append(f"data.exclude: left out {len(gone)} file(s) listed in {path} ({parts})")
    if len(listed) > len(gone):
        out.warnings.append(
            f"data.exclude: {len(listed) - len(gone)} path(s) in {path} are not in this "
            "dataset (ignored)"
        )
    _emptied_classes(out, split.samples, split.classes, path, drop_classes)
    return out


def _emptied_classes(
    out: Excluded, before: list[Sample], classes: list[str], path: str | Path, drop: bool
) -> None:
    """A problem for each class the list leaves with no training image (nothing to learn the
    class from): blocking, or with ``drop`` a warning and the class left out. Val and test
    gaps are :func:`cnnlab.data.check.unmeasured_classes`'s."""
    had = Counter((s.label, s.split) for s in before)
    has = Counter((s.label, s.split) for s in out.split.samples)
    dropped = []
    for i, name in enumerate(classes):
        empty = [s for s in SPLITS if had[i, s] and not has[i, s]]
        if "train" not in empty:
            continue
        total = sum(had[i, s] for s in SPLITS)
        listed = total - sum(has[i, s] for s in SPLITS)
        what = f"all {total} of its images" if listed == total else f"{listed} of its images"
        where = ", ".join(empty)
        text = f"class '{name}' has no image left in {where}: data.exclude ({path}) lists {what}"
        if drop:
            dropped.append(name)
            text += "; dropped (data.drop_small_classes=true)"
            out.problems.append(Problem("dropped class", text, blocking=False))
            out.warnings.append(text)
        else:
            text += (
                f"; take at least one of its images per emptied split off {Path(path).name} "
                "to keep the class, or set data.drop_small_classes=true to train without it"
            )
            out.problems.append(Problem("excluded class", text))
    if dropped:
        out.split = _without_classes(out.split, dropped)


def _without_classes(split: Split, names: list[str]) -> Split:
    """``split`` without the classes ``names``: the rest keep their order, labels renumbered."""
    classes = [c for c in split.classes if c not in names]
    index = {c: i for i, c in enumerate(classes)}
    samples = [
        dataclasses.replace(s, label=index[split.classes[s.label]])
        for s in split.samples
        if split.classes[s.label] in index
    ]
    dropped = sorted({*split.dropped, *names})
    return dataclasses.replace(split, classes=classes, samples=samples, dropped=dropped)
