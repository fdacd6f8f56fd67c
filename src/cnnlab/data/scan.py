"""Scan a dataset: find every image, decode each one fully once, and remember the verdicts.

A scan is the gate before training: every file is decoded (in parallel on all cores) so a
truncated or fake image is found now, listed with its reason, and left out, instead of
crashing epoch 7. Verdicts (with each file's SHA-1, which keys the later caches) are cached as
JSON outside the dataset, keyed per file by (path, size, mtime, ctime): the second scan of an
unchanged folder only stats files, and a file rewritten in place (even with its size and mtime
restored, as ``cp -p`` does) has a new ctime and is decoded again.

Problems of whole classes (an empty class folder, a class of only bad files) and of manifest
rows are collected in ``ScanResult.problems``; a strict scan raises them as one DataError.

Example:
    >>> scan = scan_dataset("data/flowers")  # doctest: +SKIP
    >>> scan.classes, len(scan.records), len(scan.skipped)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.atomic import atomic_write_text
from cnnlab.cachedir import touch
from cnnlab.cachelock import entry_lock
from cnnlab.data.image import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    inspect_files,
)
from cnnlab.data.issues_index import manifest_root
from cnnlab.data.manifest import read_manifest
from cnnlab.data.parallel import map_chunks
from cnnlab.data.problems import Problem, raise_blocking
from cnnlab.data.walk import LAYOUT_HELP, Candidate, Found, walk_folder
from cnnlab.errors import DataError
from cnnlab.paths import cache_dir

CACHE_FORMAT = "cnnlab-scan/2"
SAVE_EVERY_S = 20.0  # a running scan saves its verdicts this often (seconds): resumable


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
    problems: list[Problem] = field(default_factory=list)  # blocking ones stop training
    warnings: list[str] = field(default_factory=list)  # for the caller to print

    def to_report(self) -> dict[str, Any]:
        """A JSON-ready summary for ``data_report.json``."""
        from cnnlab.data.stats import scan_report

        return scan_report(self)


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_outside_paths: bool = False,
    strict: bool = True,
    progress: bool = True,
    workers: int | None = None,
) -> ScanResult:
    """Find and verify every image of a dataset folder or CSV manifest.

    Args:
        root: a dataset folder, or a CSV manifest (its folder is the root).
        max_pixels, min_side, max_bytes: limits past which a file is skipped.
        allow_outside_paths: let manifest paths leave the manifest's folder.
        strict: raise the blocking problems; False returns them in ``.problems`` so an
            audit can report everything at once.
        progress: show a progress bar.
        workers: decoding processes (default: all cores).

    Raises:
        DataError: the root is missing or not a dataset; with ``strict``, also every
            blocking problem (an empty class folder, a class of only bad files, a bad
            manifest row), all in one message.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found; {LAYOUT_HELP}")
    manifest = None
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root}: is a file, not a dataset folder; {LAYOUT_HELP}")
        manifest = root.resolve()
        root = manifest_root(manifest)  # its folder, or the dataset a cnnlab clean.csv names
        found = read_manifest(manifest, allow_outside_paths, root=root)
    else:
        root = root.resolve()
        found = walk_folder(root)
    key = f"{manifest or root}|{max_pixels}|{min_side}|{max_bytes}"
    limits = (max_pixels, min_side, max_bytes)
    warnings: list[str] = []
    # DDP ranks of a node scan once
    with entry_lock("scan-" + _cache_file(key).stem, f"the scan of {manifest or root}"):
        verdicts, from_cache = _verdicts(
            root, key, found.candidates, limits, progress, workers, warnings
        )
    scan = _assemble(root, manifest, found, verdicts, from_cache)
    scan.warnings = warnings
    if strict:
        raise_blocking(scan.problems, manifest or root)
    return scan


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
    problems = list(found.problems)
    for label in sorted({c.label for c in found.candidates}):
        if good[label] == 0:
            reasons = Counter(s.reason for s in skipped if label_of.get(s.path) == label)
            detail = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
            problems.append(
                Problem(
                    "unusable class",
                    f"every image of class '{label}' is unusable ({detail}); "
                    "fix or remove that class folder",
                )
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
        problems,
    )


def _cache_file(key: str) -> Path:
    return cache_dir("scan") / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")


def _load_cache(file: Path, key: str, warnings: list[str]) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT or data.get("key") != key:
            return {}
        entries = data["entries"]
        if not isinstance(entries, dict):
            raise TypeError("entries")
        touch(file)  # in use: least-recently-used eviction and `cache clean` spare it
        return entries
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        warnings.append(f"scan cache {file} was unreadable; rebuilt it")
        return {}


def _save_cache(
    file: Path, key: str, entries: dict[str, dict[str, Any]], warnings: list[str]
) -> None:
    """Atomic write, so an interrupted scan never leaves half a cache (it is rebuildable:
    no fsync)."""
    try:
        doc = {"format": CACHE_FORMAT, "key": key, "entries": entries}
        atomic_write_text(file, json.dumps(doc), durable=False)
    except OSError as exc:
        warnings.append(f"could not write the scan cache {file} ({exc}); the next scan decodes")


def _stat(root: str, rel: str) -> dict[str, Any] | None:
    try:
        st = os.stat(os.path.join(root, rel))
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _verdicts(
    root: Path,
    key: str,
    candidates: list[Candidate],
    limits: tuple[int, int, int],
    progress: bool,
    workers: int | None,
    warnings: list[str],
) -> tuple[dict[str, dict[str, Any]], int]:
    """Per-file verdicts: from the cache when (size, mtime, ctime) match, else decoded now."""
    file = _cache_file(key)
    cached = _load_cache(file, key, warnings)
    verdicts: dict[str, dict[str, Any]] = {}
    todo: list[str] = []
    base = str(root)
    for cand in candidates:
        st = _stat(base, cand.rel)
        if st is None:
            verdicts[cand.rel] = {"ok": False, "reason": "missing"}
            continue
        old = cached.get(cand.rel)
        if old and all(old.get(k) == v for k, v in st.items()):
            verdicts[cand.rel] = old
        else:
            verdicts[cand.rel] = st
            todo.append(cand.rel)
    done = _Progress(file, key, verdicts, todo, warnings)
    map_chunks(
        inspect_files,
        todo,
        str(root),
        *limits,
        description="scanning images",
        progress=progress,
        workers=workers,
        sink=done.add,
    )
    if todo or len(cached) != len(verdicts):
        done.save()
    return verdicts, len(candidates) - len(todo)


class _Progress:
    """Collects verdicts as chunks finish and saves them every ``SAVE_EVERY_S`` seconds, so a
    killed scan of a large folder resumes where it stopped instead of decoding it all again."""

    def __init__(
        self,
        file: Path,
        key: str,
        verdicts: dict[str, dict[str, Any]],
        todo: list[str],
        warnings: list[str],
    ) -> None:
        self.file, self.key, self.verdicts, self.todo = file, key, verdicts, todo
        self.warnings = warnings
        self.last_save = time.monotonic()

    def add(self, start: int, results: list[dict[str, Any]]) -> None:
        for rel, result in zip(self.todo[start : start + len(results)], results, strict=True):
            self.verdicts[rel].update(result)
        if time.monotonic() - self.last_save >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Save every file with a verdict (files not decoded yet have only their stat)."""
        entries = {k: v for k, v in self.verdicts.items() if "size" in v and "ok" in v}
        _save_cache(self.file, self.key, entries, self.warnings)
        self.last_save = time.monotonic()


def print_scan_summary(scan: ScanResult) -> None:
    """One short table of classes and counts, then what was skipped and why."""
    from cnnlab.data.stats import print_summary

    print_summary(scan)
