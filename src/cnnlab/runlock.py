"""One training per run folder at a time: an OS lock on ``RUN/.train.lock``.

Two ``cnnlab train --resume RUN`` started at once would both train into the same folder and
leave it a mix of two trainings (checkpoints, metrics, weights and report from either). The
process that trains a folder holds ``flock`` on its lock file from before it writes anything
until its report is drawn; another that asks for the folder fails at once, naming the holder.
The OS drops the lock when its process ends in any way (``kill -9`` included), so a killed
training never blocks its resume. Forked children (data loader workers, figure drawing)
close their copy at once (:mod:`cnnlab.cachelock`), so none keeps the folder locked after
its parent is gone.

Example:
    >>> fd = lock_run(Path("runs/cnn-1"))  # doctest: +SKIP
    >>> release_run(fd)                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from cnnlab import cachelock
from cnnlab.errors import RunError

LOCK = ".train.lock"


class RunBusy(RunError):
    """The run folder is being trained by another process."""


def lock_run(run_dir: Path, file: str = LOCK, doing: str = "trained") -> int:
    """Take ``run_dir``'s training lock (or another lock ``file`` in it) and return its file
    descriptor.

    Raises:
        RunBusy: another live process holds it (the message names it, and what it does).
    """
    path = Path(run_dir) / file
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if not cachelock._try_lock(fd):
        holder = cachelock.read_holder(fd)
        os.close(fd)
        who = f"process {holder.pid}" if holder else "another process"
        detail = f" ({holder.describe()})" if holder else ""
        hint = "or copy the folder and resume the copy" if file == LOCK else "or pick another"
        raise RunBusy(f"{run_dir} is being {doing} by {who}{detail}; wait for it to end, {hint}")
    cachelock._held.add(fd)
    cachelock._stamp(fd)
    return fd


def release_run(fd: int) -> None:
    """Give a lock from :func:`lock_run` back (the holder's record is cleared first)."""
    if fd not in cachelock._held:
        return  # released already, or a forked child's copy
    cachelock._held.discard(fd)
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)


@contextlib.contextmanager
def building(folder: Path, marker: str, fd: int | None = None) -> Iterator[Path]:
    """``folder`` complete when the block ends (its ``marker`` file removed), else gone.

    Ctrl-C or an error inside the block removes the folder; a process killed outright leaves
    the marker, so readers can tell the folder is incomplete (ensembles, evaluation folders).
    ``fd``: the marker is a lock from :func:`lock_run`, released as the block ends; None: the
    marker is created here.
    """
    if fd is None:
        (folder / marker).touch()
    try:
        yield folder
    except BaseException:
        if fd is not None:
            release_run(fd)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / marker).unlink(missing_ok=True)
    if fd is not None:
        release_run(fd)
