"""Atomic file writes: a crash leaves the old file or the new one, never half of either.

Every writer in cnnlab (run files, checkpoints, weights, caches, split files) goes through
:func:`atomic_path`, so the rule is implemented once: write a temp file in the same folder
(same file system, so the rename is atomic), flush it to disk, rename it over the target, and
remove the temp file if anything fails. The temp file gets the mode a plain ``open()``
would give (``0o666`` less the umask, a folder's default ACL applied by the kernel), not
:func:`tempfile.mkstemp`'s private ``0o600``: run files a colleague, a web server or a group
share should read stay readable after the rename.

Example:
    >>> import json, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text(json.dumps({"ok": True}))
    >>> json.loads(target.read_text())
    {'ok': True}
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's bytes to the disk (so a power cut cannot leave it empty)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename is durable only once its folder is synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], durable: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success it is renamed over ``path``.

    Args:
        path: the final file.
        durable: fsync the file and its folder (skip for caches that can be rebuilt).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except OSError as exc:
        if exc.filename is None:  # a failed write(): name the file the user will look for
            exc.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _create_temp(path: Path) -> Path:
    """Create an empty, new temp file beside ``path``, named as :data:`_TEMP` expects.

    ``os.open(..., 0o666)`` lets the kernel apply the umask (and a folder's default ACL)
    exactly as for ``open(path, "w")``; ``O_EXCL`` makes the name ours, as mkstemp does.
    """
    rng = random.SystemRandom()
    for _ in range(100):
        suffix = "".join(rng.choice(_TEMP_CHARS) for _ in range(8))
        tmp = path.with_name(f".{path.name}.{suffix}.tmp")
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666
            )
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: no free temp file name for {path.name}")


def atomic_write_text(path: str | os.PathLike[str], text: str, durable: bool = True) -> None:
    """Write text (UTF-8) atomically."""
    with atomic_path(path, durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    """Write bytes atomically."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


# atomic_path's temp names: "." + target name + "." + 8 random characters + ".tmp"
_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def temp_target(name: str) -> str | None:
    """The file name a temp file of :func:`atomic_path` was written for (None: not one)."""
    found = _TEMP.match(name)
    return found["target"] if found else None


def remove_leftovers(folder: str | os.PathLike[str], targets: Iterable[str] | None = None) -> int:
    """Delete the temp files :func:`atomic_path` left in ``folder`` when its process was killed
    mid-write (SIGKILL skips every cleanup); returns how many.

    Only for a folder no other process is writing to. ``targets``: only temp files of these
    file names (None: of any).
    """
    wanted = None if targets is None else set(targets)
    removed = 0
    for path in Path(folder).glob(".*.tmp"):
        found = _TEMP.match(path.name)
        if found and path.is_file() and (wanted is None or found["target"] in wanted):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
