"""Find the candidate image files of a dataset folder, without opening any of them.

Knows the folder layouts, what to ignore (OS junk, hidden entries), which extensions count,
Unicode class names, and symlinks: loops end (a link to itself, a chain of links back to
itself, a link to its own folder or above: skipped ``link loop``), links out of the root or
into another class's folder are skipped and reported (never followed into a second label), a
file reached twice is kept once. Decoding is :mod:`cnnlab.data.scan`'s job.
"""

from __future__ import annotations

import errno
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.problems import Problem
from cnnlab.errors import DataError

# GIF too: datasets scraped from the web hold them, and predict always read them (first frame).
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "ehthumbs.db"})
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
ClassKey = tuple[str | None, str]  # (split folder or None, class name)
LAYOUT_HELP = "expected ROOT/<class>/*.jpg, ROOT/{train,val,test}/<class>/*.jpg or a CSV path,label"


@dataclass
class Candidate:
    """A file that looks like an image: where it is, its class and split, where it really is."""

    rel: str  # POSIX path relative to the root, as on disk (not normalised)
    label: str  # NFC
    split: str | None
    real: str  # resolved path, to drop files reached twice through links
    via_link: bool


@dataclass
class Found:
    """What the walk found: candidates plus everything left out and why."""

    layout: str
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel, reason)
    ignored: int = 0
    unsupported: Counter[str] = field(default_factory=Counter)
    folders: dict[ClassKey, str] = field(default_factory=dict)  # -> folder rel
    problems: list[Problem] = field(default_factory=list)


def is_ignored(name: str) -> bool:
    """Hidden entries and OS junk are never samples or classes (``.DS_Store``, ``._x.jpg``...)."""
    return name.startswith(".") or name.lower() in JUNK_NAMES


def nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _entries(folder: Path, strict: bool = True) -> list[os.DirEntry[str]] | None:
    """A folder's entries by name; an unlistable folder is an error, or None if not strict."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        if not strict:
            return None
        raise DataError(
            f"{folder}: cannot list folder ({exc.strerror}); check permissions"
        ) from None


def _is_dir(entry: os.DirEntry[str]) -> bool | str:
    """Whether an entry is a folder (links followed), or why it cannot be told.

    ``DirEntry.is_dir()`` stats a link's target and raises for a link that points to itself
    or round a chain of links (ELOOP): that entry is a ``link loop`` skip, not a crash.
    """
    try:
        return entry.is_dir()
    except OSError as exc:
        return "link loop" if exc.errno == errno.ELOOP else "unreadable"


def _link_reason(
    target: str, key: ClassKey, owners: dict[str, ClassKey], here: str | None = None
) -> str | None:
    """Why a link to ``target`` met in class ``key`` must not be followed, or None.

    A link to another class's folder (or to a folder holding one) would put that class's
    images under a second label, so it is skipped and reported, never followed. ``here`` is
    the real folder holding a folder link: a link to it or above it is a loop.
    """
    if here is not None and _inside(here, target):
        return "link loop"
    for real, other in owners.items():
        if other != key and (_inside(target, real) or _inside(real, target)):
            return "link into another class" if other[1] != key[1] else "link into another split"
    return None


def _walk_class(
    found: Found,
    root: Path,
    root_real: str,
    start: Path,
    key: ClassKey,
    owners: dict[str, ClassKey],
    visited: set[str],
) -> None:
    """Collect the files under one class folder (recursively, links last)."""
    stack = [(start, os.path.realpath(start), start.is_symlink())]
    links: list[tuple[Path, str, bool]] = []  # followed after the real folders, so they win
    while stack or links:
        folder, folder_real, via_link = stack.pop() if stack else links.pop()
        if folder_real in visited:
            if via_link:
                rel = folder.relative_to(root).as_posix()
                found.skipped.append((rel, "link to a folder already in the dataset"))
            continue
        visited.add(folder_real)
        entries = _entries(folder, strict=False)
        folder_rel = folder.relative_to(root).as_posix()
        if entries is None:
            found.skipped.append((folder_rel, "unreadable"))
            continue
        for entry in entries:
            rel = f"{folder_rel}/{entry.name}"  # no Path per file: ~half a 100k-file walk
            if is_ignored(entry.name):
                found.ignored += 1
                continue
            link = entry.is_symlink()
            real = os.path.realpath(entry.path) if link else os.path.join(folder_real, entry.name)
            is_dir = _is_dir(entry)
            if isinstance(is_dir, str):
                found.skipped.append((rel, is_dir))
                continue
            if link:
                reason = (
                    "link outside dataset"
                    if not _inside(real, root_real)
                    else _link_reason(real, key, owners, folder_real if is_dir else None)
                )
                if reason:
                    found.skipped.append((rel, reason))
                    continue
            if is_dir:
                (links if link else stack).append((Path(entry.path), real, via_link or link))
                continue
            ext = os.path.splitext(entry.name)[1].lower()
            if ext not in IMAGE_EXTS:
                found.unsupported[ext or "(none)"] += 1
                continue
            found.candidates.append(Candidate(rel, key[1], key[0], real, via_link or link))


def _class_dirs(found: Found, root: Path, root_real: str, parent: Path) -> list[Path]:
    """Class folders of ``parent``; loose images there are skipped, junk ignored."""
    dirs = []
    for entry in _entries(parent) or []:
        rel = Path(entry.path).relative_to(root).as_posix()
        if is_ignored(entry.name):
            found.ignored += 1
        elif entry.is_symlink() and not _inside(os.path.realpath(entry.path), root_real):
            found.skipped.append((rel, "link outside dataset"))
        elif isinstance(is_dir := _is_dir(entry), str):
            found.skipped.append((rel, is_dir))
        elif is_dir:
            dirs.append(Path(entry.path))
        elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTS:
            found.skipped.append((rel, "not in a class folder"))
        else:
            found.unsupported[os.path.splitext(entry.name)[1].lower() or "(none)"] += 1
    return dirs


def _detect_layout(root: Path, top: list[Path]) -> str:
    names = {p.name.lower() for p in top}
    split_like = names & set(SPLIT_NAMES)
    if not split_like:
        return "folder"
    if "train" in split_like and split_like == names:
        return "split"
    if "train" in split_like:
        others = ", ".join(sorted(names - split_like))
        raise DataError(
            f"{root}: mixes split folders (train) with class folders ({others}); {LAYOUT_HELP}"
        )
    return "folder"


def walk_folder(root: Path) -> Found:
    """Walk a folder dataset (flat or split layout) and return its candidate files.

    Raises:
        DataError: the folder is not a dataset at all (no class folders, mixed layouts).
            Problems of single classes (an empty class folder) are collected in
            ``Found.problems`` instead, so an audit can report all of them at once.
    """
    root_real = os.path.realpath(root)
    probe = Found(layout="folder")
    top = _class_dirs(probe, root, root_real, root)
    if not top:
        what = "images directly in it but no class folders" if probe.skipped else "no class folders"
        raise DataError(f"{root}: {what}; {LAYOUT_HELP}")
    layout = _detect_layout(root, top)
    found = Found(
        layout=layout, skipped=probe.skipped, ignored=probe.ignored, unsupported=probe.unsupported
    )
    groups = (
        [(None, top)]
        if layout == "folder"
        else [(SPLIT_NAMES[d.name.lower()], _class_dirs(found, root, root_real, d)) for d in top]
    )
    classes = [((split, nfc(d.name)), d) for split, dirs in groups for d in dirs]
    owners, kept = _owners(found, root, root_real, classes)
    visited: set[str] = {root_real}
    for key, folder in kept:
        found.folders.setdefault(key, folder.relative_to(root).as_posix())
        _walk_class(found, root, root_real, folder, key, owners, visited)
    _check_empty(found)
    return _dedupe(found)


def _owners(
    found: Found, root: Path, root_real: str, classes: list[tuple[ClassKey, Path]]
) -> tuple[dict[str, ClassKey], list[tuple[ClassKey, Path]]]:
    """Real path of every class folder -> its class; class folders reached through a link
    (their own, or a linked split folder's) that lead into another class's folder are
    skipped here: following them would label that class's images twice."""
    real = {d: os.path.realpath(d) for _, d in classes}
    direct = {d for _, d in classes if real[d] == os.path.join(root_real, d.relative_to(root))}
    owners = {real[d]: key for key, d in classes if d in direct}
    kept = []
    for key, folder in classes:
        if folder not in direct:
            reason = _link_reason(real[folder], key, owners)
            if reason:
                found.skipped.append((folder.relative_to(root).as_posix(), reason))
                continue
            owners[real[folder]] = key
        kept.append((key, folder))
    return owners, kept


def _check_empty(found: Found) -> None:
    have = Counter((c.split, c.label) for c in found.candidates)
    for key, rel in sorted(found.folders.items(), key=lambda kv: kv[1]):
        if have[key] == 0:
            where = f" ({rel}/)" if rel != key[1] else ""  # relative: reports are shared
            found.problems.append(
                Problem(
                    "empty class",
                    f"class folder '{key[1]}'{where} has no image files "
                    f"({' '.join(sorted(IMAGE_EXTS))}); add images or remove the folder",
                )
            )


def _dedupe(found: Found) -> Found:
    """Keep one candidate per real file: the one reached without links, else the first."""
    seen: set[str] = set()
    kept = []
    for cand in sorted(found.candidates, key=lambda c: (c.via_link, c.rel)):
        if cand.real in seen:
            found.skipped.append((cand.rel, "link to a file already in the dataset"))
            continue
        seen.add(cand.real)
        kept.append(cand)
    found.candidates = sorted(kept, key=lambda c: c.rel)
    return found
