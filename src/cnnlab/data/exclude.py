"""``data.exclude``: leave the files a CSV lists out of a run, without touching the dataset.

The list is any CSV with a ``path`` column of paths relative to the dataset root; the
``issues.csv`` that ``cnnlab data issues`` writes is one. Files are removed from the split
after it is made, so every other image keeps the split it has without the exclusion, and a
run with the exclusion is compared with one without it on the same remaining test images.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.console import info, warn
from cnnlab.errors import DataError

if TYPE_CHECKING:
    from cnnlab.data.split import Split


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


def exclude_from_split(split: Split, path: str | Path) -> Split:
    """A copy of ``split`` without the files listed in the CSV at ``path``; says what left.

    Raises:
        DataError: the list names files, but none of them is in this dataset (it was most
            likely made for another one).
    """
    listed = read_excluded(path)
    kept = [s for s in split.samples if s.path not in listed]
    gone = Counter(s.split for s in split.samples if s.path in listed)
    if listed and not gone:
        raise DataError(
            f"{path}: none of its {len(listed)} paths is in this dataset; "
            "paths must be relative to the dataset root, as data issues writes them"
        )
    unknown = len(listed) - sum(gone.values())
    if listed:
        parts = ", ".join(f"{gone[s]} {s}" for s in ("train", "val", "test") if gone[s])
        info(f"data.exclude: left out {sum(gone.values())} file(s) listed in {path} ({parts})")
    if unknown:
        warn(f"data.exclude: {unknown} path(s) in {path} are not in this dataset (ignored)")
    return dataclasses.replace(split, samples=kept)
