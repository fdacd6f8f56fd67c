"""Which images of a run's own split were rewritten since training: bytes against split.csv.

``split.csv`` records each file's SHA-1 as the training scan read it
(:func:`cnnlab.data.split.save_split`). ``cnnlab eval RUN`` scores the split again from the
dataset folder, and a file rewritten in place (same path, other bytes: edited, re-encoded,
replaced) would otherwise be scored as if it were the image the run was tested on. Such files
are treated as eval treats files gone from the folder: the evaluation goes on (the folder is
the user's, and the images are scored as they are now), and they are counted, named in a
warning and listed in the report, so the numbers never silently describe other data.

A ``split.csv`` written before the column existed has no sha1: nothing is compared.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from cnnlab.console import track, warn

SHOWN = 3  # paths a warning names; the report lists them all
CHANGED = "changed since training (sha1 recorded -> now)"  # the report's data section


def recorded_digests(split_file: Path, split: str) -> dict[str, str]:
    """``{path: sha1}`` of ``split``'s rows that recorded one (none in an older split.csv)."""
    with split_file.open(newline="", encoding="utf-8") as fh:
        return {
            row["path"]: row["sha1"]
            for row in csv.DictReader(fh)
            if row.get("split") == split and row.get("sha1")
        }


def _sha1(path: Path) -> str | None:
    """The file's SHA-1, or None when it cannot be read (eval's decode names that file)."""
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha1").hexdigest()
    except OSError:
        return None


def changed_files(root: Path, recorded: dict[str, str]) -> dict[str, str]:
    """``{path: "recorded -> now"}`` (12-digit prefixes) of the files whose bytes differ.

    Reads each file once; the decode that follows usually finds it in the OS cache.
    """
    changed = {}
    for rel, want in track(sorted(recorded.items()), "checking files", total=len(recorded)):
        now = _sha1(root / rel)
        if now is not None and now != want:
            changed[rel] = f"{want[:12]} -> {now[:12]}"
    return changed


def check_split_files(root: Path, split_file: Path, split: str) -> dict[str, str]:
    """Compare ``split``'s files under ``root`` with ``split_file``'s sha1 and warn about
    those rewritten since training; returns them as :func:`changed_files` does."""
    recorded = recorded_digests(split_file, split)
    changed = changed_files(root, recorded) if recorded else {}
    if changed:
        names = ", ".join(list(changed)[:SHOWN])
        more = f" and {len(changed) - SHOWN} more" if len(changed) > SHOWN else ""
        warn(
            f"{len(changed)} of the {len(recorded)} '{split}' images changed since the run was "
            f"trained (their bytes differ from the sha1 in {split_file}): {names}{more}; they "
            "are scored as they are now, not as the run saw them (the report lists them)"
        )
    return changed
