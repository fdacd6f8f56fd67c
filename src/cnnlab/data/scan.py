"""Scan a dataset: find every image, decode each one fully once, and remember the verdicts.

A scan is the gate before training: every file is decoded (in parallel on all cores) so a
truncated or fake image is found now, listed with its reason, and left out, instead of
crashing epoch 7. Verdicts are cached as JSON outside the dataset, keyed per file by
(path, size, mtime, ctime), so the second scan of an unchanged folder only stats files.

Example:
    >>> scan = scan_dataset("data/flowers")  # doctest: +SKIP
    >>> scan.classes, len(scan.records), len(scan.skipped)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.console import info, warn
from cnnlab.data.image import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, inspect_files
from cnnlab.data.parallel import map_chunks
from cnnlab.data.walk import (
    IMAGE_EXTS,
    LAYOUT_HELP,
    SPLIT_NAMES,
    Candidate,
    Found,
    nfc,
    walk_folder,
)
from cnnlab.errors import DataError
from cnnlab.paths import cache_dir

CACHE_FORMAT = "cnnlab-scan/1"


@dataclass(frozen=True)
class Record:
    """One usable image: path relative to the root (POSIX), class name, explicit split."""

    path: str
    label: str
    split: str | None = None
    size: int = 0  # bytes
    width: int = 0
    height: int = 0
    mode: str = ""  # Pillow mode as stored in the file (before conversion)
    sha1: str = ""  # of the file's bytes: exact duplicates without re-reading


@dataclass(frozen=True)
class Skipped:
    """A file left out, with a short fixed reason."""

    path: str
    reason: str


@dataclass
class ScanResult:
    """Everything later steps need to know about a dataset, and what was left out."""

    root: Path
    layout: str  # folder | split | csv
    classes: list[str]
    records: list[Record]
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0
    unsupported: dict[str, int] = field(default_factory=dict)
    manifest: Path | None = None
    from_cache: int = 0

    def to_report(self) -> dict[str, Any]:
        """A JSON-ready summary for ``data_report.json``."""
        from cnnlab.data.stats import scan_report

        return scan_report(self)


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    progress: bool = True,
    workers: int | None = None,
) -> ScanResult:
    """Find and verify every image of a dataset folder or CSV manifest.

    Raises:
        DataError: the root is missing or not a dataset, a class folder is empty, or every
            image of a class is bad.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found; {LAYOUT_HELP}")
    manifest = None
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root}: is a file, not a dataset folder; {LAYOUT_HELP}")
        manifest = root.resolve()
        root = manifest.parent
        found = read_manifest(manifest)
    else:
        root = root.resolve()
        found = walk_folder(root)
    key = f"{manifest or root}|{max_pixels}|{min_side}"
    verdicts, from_cache = _verdicts(
        root, key, found.candidates, max_pixels, min_side, progress, workers
    )
    return _assemble(root, manifest, found, verdicts, from_cache)


def _assemble(
    root: Path,
    manifest: Path | None,
    found: Found,
    verdicts: dict[str, dict[str, Any]],
    from_cache: int,
) -> ScanResult:
    records, skipped = [], [Skipped(p, r) for p, r in found.skipped]
    for cand in found.candidates:
        v = verdicts[cand.rel]
        if v.get("ok"):
            records.append(
                Record(
                    cand.rel,
                    cand.label,
                    cand.split,
                    v["size"],
                    v["width"],
                    v["height"],
                    v["mode"],
                    v["sha1"],
                )
            )
        else:
            skipped.append(Skipped(cand.rel, v["reason"]))
    good = Counter(r.label for r in records)
    label_of = {c.rel: c.label for c in found.candidates}
    for label in sorted({c.label for c in found.candidates}):
        if good[label] == 0:
            reasons = Counter(s.reason for s in skipped if label_of.get(s.path) == label)
            detail = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
            raise DataError(
                f"{root}: every image of class '{label}' is unusable ({detail}); "
                "fix or remove that class folder"
            )
    skipped.sort(key=lambda s: s.path)
    return ScanResult(
        root,
        found.layout,
        sorted(good),
        records,
        skipped,
        found.ignored,
        dict(sorted(found.unsupported.items())),
        manifest,
        from_cache,
    )


def read_manifest(path: Path) -> Found:
    """Parse a CSV manifest ``path,label[,split]``; paths are relative to the CSV's folder."""
    found = Found(layout="csv")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the CSV manifest ({exc})") from None
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        raise DataError(f"{path}: the first row must be a header with columns path,label[,split]")
    ip, il = header.index("path"), header.index("label")
    isp = header.index("split") if "split" in header else None
    seen: set[str] = set()
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        rel, label = _cell(row, ip, path, n, "path"), nfc(_cell(row, il, path, n, "label"))
        split = _manifest_split(
            row[isp].strip() if isp is not None and isp < len(row) else "", path, n
        )
        if rel in seen:
            raise DataError(f"{path}: line {n}: '{rel}' is listed twice; keep one row per file")
        seen.add(rel)
        if Path(rel).suffix.lower() not in IMAGE_EXTS:
            found.unsupported[Path(rel).suffix.lower() or "(none)"] += 1
            continue
        found.candidates.append(Candidate(rel, label, split, rel, False))
    given = {c.split is not None for c in found.candidates}
    if len(given) > 1:
        raise DataError(
            f"{path}: some rows have a split and some do not; fill the split "
            "column on every row or leave it empty on all"
        )
    if not found.candidates:
        raise DataError(f"{path}: the manifest lists no image files; {LAYOUT_HELP}")
    found.layout = "csv"
    return found


def _cell(row: list[str], i: int, path: Path, n: int, what: str) -> str:
    value = row[i].strip() if i < len(row) else ""
    if not value:
        raise DataError(f"{path}: line {n}: empty {what}; every row needs path and label")
    return value.replace("\\", "/")


def _manifest_split(value: str, path: Path, n: int) -> str | None:
    if not value:
        return None
    if value.lower() not in SPLIT_NAMES:
        raise DataError(f"{path}: line {n}: unknown split '{value}'; use train, val or test")
    return SPLIT_NAMES[value.lower()]


def _cache_file(key: str) -> Path:
    return cache_dir("scan") / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def _load_cache(file: Path, key: str) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT or data.get("key") != key:
            return {}
        entries = data["entries"]
        if not isinstance(entries, dict):
            raise TypeError("entries")
        return entries
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        info(f"scan cache {file} is unreadable; rebuilding it")
        return {}


def _save_cache(file: Path, key: str, entries: dict[str, dict[str, Any]]) -> None:
    """Atomic write (temp file + rename) so an interrupted scan never leaves half a cache."""
    try:
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".scan-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"format": CACHE_FORMAT, "key": key, "entries": entries}, fh)
        os.replace(tmp, file)
    except OSError as exc:
        warn(f"could not write the scan cache {file} ({exc}); the next scan will decode again")


def _stat(root: Path, rel: str) -> dict[str, Any] | None:
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _verdicts(
    root: Path,
    key: str,
    candidates: list[Candidate],
    max_pixels: int,
    min_side: int,
    progress: bool,
    workers: int | None,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Per-file verdicts: from the cache when (size, mtime, ctime) match, else decoded now."""
    file = _cache_file(key)
    cached = _load_cache(file, key)
    verdicts: dict[str, dict[str, Any]] = {}
    todo: list[str] = []
    for cand in candidates:
        st = _stat(root, cand.rel)
        if st is None:
            verdicts[cand.rel] = {"ok": False, "reason": "missing"}
            continue
        old = cached.get(cand.rel)
        if old and all(old.get(k) == v for k, v in st.items()):
            verdicts[cand.rel] = old
        else:
            verdicts[cand.rel] = st
            todo.append(cand.rel)
    results = map_chunks(
        inspect_files,
        todo,
        str(root),
        max_pixels,
        min_side,
        description="scanning images",
        progress=progress,
        workers=workers,
    )
    for rel, result in zip(todo, results, strict=True):
        verdicts[rel].update(result)
    if todo or len(cached) != len(verdicts):
        _save_cache(file, key, {k: v for k, v in verdicts.items() if "size" in v})
    return verdicts, len(candidates) - len(todo)


def print_scan_summary(scan: ScanResult) -> None:
    """One short table of classes and counts, then what was skipped and why."""
    from cnnlab.data.stats import print_summary

    print_summary(scan)
