"""Locks on ``$CNNLAB_CACHE`` entries that never outlive the process holding them.

One process builds a cache entry (decoded images, a scan) while others that need the same
entry wait, then read it. The lock is ``flock`` on ``locks/<name>.lock``. Its holder writes who
it is into that file (pid, process start, host, command) and touches it whenever its tracked
work advances (:func:`cnnlab.console.observe_progress`: each decoded or scanned chunk). A waiter

- says once what it waits for and who holds it;
- takes the lock over when the holder is gone (a killed process on this host) or has made no
  progress for :data:`STALL_S` seconds: it replaces the lock file with a new one (under a
  short guard lock, so two waiters never both replace it). An old holder that resumes later
  writes the same entry atomically, so nothing is corrupted; at worst work is done twice.

``flock`` locks belong to the open file, which forked children share: a decode worker forked
while its parent holds a lock would keep it held after the parent is killed, and every later
run would wait on it. So each forked child closes its copies of the lock files at once
(``os.register_at_fork``).

Example:
    >>> with entry_lock("images-0123", "the decoded image cache"):  # doctest: +SKIP
    ...     build_the_entry()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cnnlab.paths import cache_root

POLL_S = 0.5  # between two tries of a held lock
STALL_S = 600.0  # a holder whose lock file was not touched for this long makes no progress
BEAT_S = 1.0  # a holder touches its lock file at most this often
_held: set[int] = set()  # lock file descriptors this process holds (closed in forked children)


def _close_inherited() -> None:
    """In a forked child: drop the copies of the parent's locks, which the child never
    releases on purpose (and would keep held after the parent is killed)."""
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited)


@dataclass
class Holder:
    """Who holds a lock, as written into the lock file."""

    pid: int
    host: str
    started: str  # the process's start time in clock ticks since boot ("" where unknown)
    since: float  # when it took the lock (seconds since the epoch)
    command: str

    def alive(self) -> bool | None:
        """False when the process is gone (or its pid now names another process); None when
        that cannot be told from here (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's live process
        return not self.started or _started(self.pid) in ("", self.started)

    def describe(self) -> str:
        where = "" if self.host == socket.gethostname() else f" on {self.host}"
        clock = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid}{where} ({self.command}, since {clock})"


def _started(pid: int) -> str:
    """A process's start time from /proc (tells a reused pid apart); "" where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _me() -> Holder:
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.name  # python -m
    command = " ".join([name, *sys.argv[1:2]])
    return Holder(os.getpid(), socket.gethostname(), _started(os.getpid()), time.time(), command)


def read_holder(fd: int) -> Holder | None:
    """The holder a lock file names; None when it names none (released, or not yet written)."""
    try:
        return Holder(**json.loads(os.pread(fd, 4096, 0).decode()))
    except (OSError, ValueError, TypeError):
        return None


def holder_of(lock: Path) -> Holder | None:
    """:func:`read_holder` by path, without taking the lock (which would make a process about
    to take it wait)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        return read_holder(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _same_file(fd: int, path: Path) -> bool:
    """False once a waiter that took the lock over has replaced the file at ``path``."""
    try:
        st, mine = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class _Waiter:
    """Tells once what is awaited, and decides when a holder is gone or stuck."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what
        self.told = False
        self.suspect: tuple[str, Holder | None] | None = None

    def should_take_over(self, fd: int) -> bool:
        from cnnlab.console import info, warn

        holder = read_holder(fd)
        if not self.told:
            who = holder.describe() if holder else "another process"
            info(f"waiting for {self.what}: {who} holds its lock {self.path}")
            self.told = True
        reason = _why_stuck(fd, holder)
        if reason is None:
            self.suspect = None
            return False
        if self.suspect != (reason, holder):  # confirm on the next poll: the holder may be
            self.suspect = (reason, holder)  # writing its record just now
            return False
        warn(f"{self.what}: {reason}; taking its lock {self.path} over")
        return True


def _why_stuck(fd: int, holder: Holder | None) -> str | None:
    """Why the holder of ``fd``'s lock will never release it, or None."""
    if holder is not None and holder.alive() is False:
        return f"the process holding it, pid {holder.pid} ({holder.command}), is gone"
    try:
        idle = time.time() - os.fstat(fd).st_mtime
    except OSError:
        return None
    if idle >= STALL_S:
        who = holder.describe() if holder else "the process holding it"
        return f"{who} has made no progress for {idle / 60:.0f} min"
    return None


def _take_over(path: Path, fd: int) -> None:
    """Replace a stuck lock file by a new one, unless another waiter did so already."""
    guard = os.open(path.parent / ".guard", os.O_RDWR | os.O_CREAT, 0o644)
    _held.add(guard)
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)  # held for a moment, by live processes only
        if _same_file(fd, path) and not _try_lock(fd):
            path.unlink(missing_ok=True)
    finally:
        _held.discard(guard)
        os.close(guard)


def _wait_on(fd: int, path: Path, waiter: _Waiter) -> bool:
    """Poll the lock on ``fd``: True once held (and still the file at ``path``), False when the
    file at ``path`` must be opened again."""
    while True:
        if _try_lock(fd):
            return _same_file(fd, path)
        if not _same_file(fd, path):
            return False
        if waiter.should_take_over(fd):
            _take_over(path, fd)
            return False
        time.sleep(POLL_S)


def _acquire(path: Path, what: str) -> int:
    waiter = _Waiter(path, what)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if _wait_on(fd, path, waiter):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _stamp(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(_me())).encode(), 0)


@contextlib.contextmanager
def entry_lock(name: str, what: str = "a cache entry") -> Iterator[None]:
    """Build one cache entry in one process at a time (the DDP ranks of a node, two runs on
    the same data): the first builds it, the others wait (saying so), then read the finished
    entry. A holder that was killed, or makes no progress, is not waited for."""
    from cnnlab.console import observe_progress

    folder = cache_root() / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _acquire(folder / f"{name}.lock", what)
    except OSError:  # a read-only cache: nothing will be written to race over
        yield
        return
    owner, last = os.getpid(), [time.monotonic()]
    _held.add(fd)
    _stamp(fd)

    def beat(*_: object) -> None:
        if time.monotonic() - last[0] >= BEAT_S and os.utime in os.supports_fd:
            last[0] = time.monotonic()
            with contextlib.suppress(OSError):
                os.utime(fd)

    try:
        with observe_progress(beat):
            yield
    finally:
        if os.getpid() == owner:  # never in a forked child, whose copy is closed already
            _held.discard(fd)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # names no holder any more
            os.close(fd)


@contextlib.contextmanager
def writer_lock(tmp: Path) -> Iterator[None]:
    """Hold an exclusive lock on a temporary file while it is written, so a concurrent
    ``cnnlab cache clean`` never takes it for a dead process's leftover."""
    fd = os.open(tmp, os.O_RDONLY)
    owner = os.getpid()
    _held.add(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if os.getpid() == owner:
            _held.discard(fd)
            os.close(fd)
