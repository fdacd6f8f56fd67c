"""Keep ``$CNNLAB_CACHE`` under control: a size budget, LRU eviction, free-space checks.

Everything under the cache folder can be rebuilt (decoded images, scan verdicts, features,
split ledgers), so an entry may be deleted at any time; the cost is decoding again. Before a
large entry is written (:func:`make_room`), cnnlab

1. removes leftovers of killed processes: temporary files (``.NAME.*.tmp``) that no live
   writer holds a lock on, and whose entry's builder is gone (:mod:`cnnlab.cachelock`) or
   that are older than a few minutes;
2. raises a one-line :class:`CacheSpaceError`, before evicting anything, when the entry
   cannot fit even in an empty cache: it exceeds a ``cache.max_gb`` the user set, or the
   free disk plus every other entry (keeping a margin free); a memory-mapped write must
   never hit a full disk (SIGBUS kills the process);
3. evicts the least recently used entries until the cache fits its budget
   (``cache.max_gb``; default a quarter of the disk space the cache could use, i.e. of its
   own size plus the free space) and the disk keeps a margin free.

An entry is a file group with one stem in one kind folder (``images/<key>.npy`` and
``images/<key>.json``) or a sub-folder (``datasets/digits``). Its last use is the newest
modification or access time of its files; every reader (decoded images, scan verdicts,
split ledgers, features) touches the entry it used, since access times are not kept up to date
on most mounts (``relatime``: at most once a day).

Example:
    >>> make_room(2 * 10**9, "the decoded image cache")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.atomic import temp_target
from cnnlab.cachelock import holder_of
from cnnlab.errors import DataError
from cnnlab.paths import cache_root, usable_cache_root

DEFAULT_FRACTION = 0.25  # of (cache size + free disk) when cache.max_gb is not set
FREE_MARGIN = 256 * 2**20  # bytes left free on the disk after a cache write
LEFTOVER_AGE_S = 600.0  # an unlocked temporary file older than this was left by a dead writer
SKIP_KINDS = {"locks"}  # lock files of live processes: never entries, never evicted
_budget_gb: float | None = None


class CacheSpaceError(DataError):
    """A cache entry does not fit on the disk (or in the budget) even after eviction."""


@dataclass
class Entry:
    """One evictable cache entry."""

    kind: str
    key: str
    paths: list[Path] = field(default_factory=list)
    bytes: int = 0
    last_used: float = 0.0  # seconds since the epoch


def configure(max_gb: float | None) -> None:
    """Set this process's cache budget (``cache.max_gb``; None: the default fraction)."""
    global _budget_gb
    _budget_gb = max_gb


def _bytes(st: os.stat_result) -> int:
    """Bytes a file occupies on the disk (a sparse or preallocated file: its blocks)."""
    return st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size


def _size(path: Path) -> tuple[int, float]:
    """(bytes, newest of mtime/atime) of a file, or of everything below a folder."""
    files = [path] if not path.is_dir() else [p for p in path.rglob("*") if p.is_file()]
    total, newest = 0, 0.0
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        total += _bytes(st)
        newest = max(newest, st.st_mtime, st.st_atime)
    return total, newest


def entries(root: Path | None = None) -> list[Entry]:
    """Every cache entry, least recently used first."""
    root = root or cache_root()
    found: dict[tuple[str, str], Entry] = {}
    if not root.is_dir():
        return []
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if kind_dir.name in SKIP_KINDS:
            continue
        for child in kind_dir.iterdir():
            if child.name.startswith("."):
                continue  # temporary files: see leftovers()
            key = child.name if child.is_dir() else child.name.split(".")[0]
            entry = found.setdefault((kind_dir.name, key), Entry(kind_dir.name, key))
            size, used = _size(child)
            entry.paths.append(child)
            entry.bytes += size
            entry.last_used = max(entry.last_used, used)
    return sorted(found.values(), key=lambda e: e.last_used)


def remove(entry: Entry) -> int:
    """Delete an entry; returns the bytes freed. A process that has the file memory-mapped
    keeps reading it (Linux frees the pages when the last mapping goes)."""
    for path in entry.paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return entry.bytes


@dataclass
class TempFile:
    """A temporary file under the cache: an entry being written, or a killed writer's leftover."""

    path: Path
    bytes: int
    modified: float  # seconds since the epoch
    leftover: bool  # its writer is gone: `cache clean` (and the next large write) deletes it
    writer: str = ""  # who writes it, where known


def _unlocked(path: Path) -> bool:
    """True when no process holds :func:`writer_lock` on the file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _entry_holder(root: Path, tmp: Path) -> tuple[bool, str]:
    """(nobody builds the entry ``tmp`` belongs to, who does). An entry built under
    :func:`entry_lock` (decoded images, scans) is built only while its lock names a live
    holder, so its temporary file is a leftover as soon as the holder is gone; for other
    entries this cannot be told (False)."""
    target = temp_target(tmp.name)
    if target is None:
        return False, ""
    lock = root / "locks" / f"{tmp.parent.name}-{target.split('.')[0]}.lock"
    if not lock.is_file():
        return False, ""
    holder = holder_of(lock)
    if holder is None:
        return True, ""  # released (a holder empties its lock file when it lets go)
    alive = holder.alive()
    if alive is False or (alive and holder.pid == os.getpid()):
        return True, ""  # gone; or this process, whose own temporary file is locked
    return False, holder.describe()


def temp_files(root: Path | None = None, min_age_s: float = LEFTOVER_AGE_S) -> list[TempFile]:
    """Every temporary file under the cache. One is a leftover of a killed process when no
    live writer holds a lock on it and either its entry's builder is gone or it is older than
    ``min_age_s`` (small files such as JSON are written without a lock, in moments)."""
    root = root or cache_root()
    if not root.is_dir():
        return []
    now, found = time.time(), []
    for path in sorted(root.rglob(".*.tmp")):
        try:
            st = path.stat()
        except OSError:
            continue
        if not path.is_file():
            continue
        gone, writer = _entry_holder(root, path)
        if not _unlocked(path):
            writer = writer or "a live process"
            found.append(TempFile(path, _bytes(st), st.st_mtime, False, writer))
            continue
        leftover = gone or now - st.st_mtime >= min_age_s
        found.append(TempFile(path, _bytes(st), st.st_mtime, leftover, writer))
    return found


def leftovers(root: Path | None = None, min_age_s: float = LEFTOVER_AGE_S) -> list[Path]:
    """Temporary files of writers that died (see :func:`temp_files`)."""
    return [t.path for t in temp_files(root, min_age_s) if t.leftover]


def clean_leftovers(root: Path | None = None, min_age_s: float = LEFTOVER_AGE_S) -> int:
    """Delete the leftovers of killed processes; returns the bytes freed."""
    freed = 0
    for temp in temp_files(root, min_age_s):
        if temp.leftover:
            with contextlib.suppress(OSError):
                temp.path.unlink()
                freed += temp.bytes
    return freed


def disk_free(path: Path) -> int:
    """Free bytes on the disk that holds ``path``, or would once it is created (measured at
    its nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.is_dir():
            return shutil.disk_usage(folder).free
    return 0


def format_size(nbytes: float, other: float | None = None) -> str:
    """A size in MB below 1 GB (``6.9 MB``), else in GB; with ``other``, in digits enough to
    tell the two apart (a need of 6.9 MB against a budget of 5.0 MB, never "0.01 vs 0.01")."""
    if nbytes == 0 and not other:
        return "0 MB"
    big = max(abs(nbytes), abs(other or 0))
    unit, scale, digits = ("GB", 1e9, 2) if big >= 1e9 else ("MB", 1e6, 1 if big >= 1e6 else 3)
    while other is not None and digits < 6:
        if f"{nbytes / scale:.{digits}f}" != f"{other / scale:.{digits}f}":
            break
        digits += 1
    return f"{nbytes / scale:.{digits}f} {unit}"


def budget_bytes(used: int, free: int, max_gb: float | None = None) -> int:
    """The cache's size budget: ``max_gb`` (GB = 10**9 bytes), else a fraction of the space
    the cache could use (its own size plus the free disk)."""
    max_gb = max_gb if max_gb is not None else _budget_gb
    if max_gb is not None:
        return int(max_gb * 1e9)
    return int(DEFAULT_FRACTION * (used + free))


def make_room(nbytes: int, what: str, keep: tuple[Path, ...] = ()) -> None:
    """Make sure ``nbytes`` more fit in the cache: clean leftovers, evict LRU entries.

    Args:
        nbytes: size of the entry about to be written.
        what: names the entry in the error message.
        keep: files that must not be evicted (the entry being reused or written).

    Raises:
        CacheSpaceError: the disk (keeping a margin free) or the budget cannot hold it.
        OutputError: the cache cannot be a folder (``$CNNLAB_CACHE`` is a file).
    """
    root = usable_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    clean_leftovers(root)
    current = [e for e in entries(root) if not any(p in keep for p in e.paths)]
    used = sum(e.bytes for e in current)
    free = shutil.disk_usage(root).free
    budget = budget_bytes(used, free)
    _check_fits(nbytes, what, root, free, used, budget)  # before evicting anything
    for entry in list(current):
        if used + nbytes <= budget and free - nbytes >= FREE_MARGIN:
            break
        freed = remove(entry)
        used -= freed
        free += freed
    if free - nbytes < FREE_MARGIN:  # the disk filled meanwhile (another writer)
        _check_fits(nbytes, what, root, free, 0, budget)


def _check_fits(nbytes: int, what: str, root: Path, free: int, evictable: int, budget: int) -> None:
    """Raise when ``nbytes`` cannot fit even with every evictable entry gone, so nothing is
    evicted in vain. The default budget is a target (an entry larger than it may still use the
    free disk); a budget the user set with ``cache.max_gb`` is a limit."""
    if _budget_gb is not None and nbytes > budget:
        raise CacheSpaceError(
            f"{what} needs {format_size(nbytes, budget)}, more than the cache budget "
            f"cache.max_gb={_budget_gb:g} ({format_size(budget, nbytes)}); nothing was evicted: "
            "raise cache.max_gb, or use data.cache=memory or data.cache=off"
        )
    room = free + evictable - FREE_MARGIN
    if nbytes > room:
        raise CacheSpaceError(
            f"{what} needs {format_size(nbytes, room)} but {root} has room for "
            f"{format_size(max(room, 0), nbytes)} at most ({format_size(free)} free on its "
            f"disk, {format_size(evictable)} in other cache entries, {FREE_MARGIN // 2**20} MB "
            "kept free); nothing was evicted: free disk space, set CNNLAB_CACHE to a larger "
            "disk, or use data.cache=off"
        )


def touch(path: Path) -> None:
    """Mark an entry as just used (LRU order), ignoring a read-only cache."""
    with contextlib.suppress(OSError):
        os.utime(path)


def clean(older_than_days: float | None = None, root: Path | None = None) -> tuple[int, int]:
    """Delete leftovers of killed processes and entries unused for ``older_than_days``
    (all entries when None); returns (entries removed, bytes freed)."""
    root = root or cache_root()
    freed = clean_leftovers(root)
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    removed = 0
    for entry in entries(root):
        if cutoff is None or entry.last_used < cutoff:
            freed += remove(entry)
            removed += 1
    return removed, freed
