"""K worker processes on one machine, the CPU threads split between them.

Small models on a few CPU cores train faster as several runs side by side than as one run
using every core (a convolution on a 32-px batch does not keep many threads busy), so
``--workers K`` starts K processes that each run :func:`~cnnlab.schedule.worker.run_worker`
on the same storage with ``cores // K`` threads. The parent only shows progress, read from
the storage, and waits.

A worker ends with the parent even when the parent is killed with SIGKILL
(:func:`cnnlab.data.parallel.die_with_parent`).

Ctrl-C and SIGTERM: the parent does not let a ``KeyboardInterrupt`` land wherever it is (it
could land inside a SQLAlchemy weakref callback, where Python prints "Exception ignored" and
drops it, and the pool went on). While it waits, it only notes the signal
(:class:`_Signals`), then stops the workers, waits for them and raises ``KeyboardInterrupt``
itself, with the signal's number as ``signum``. The workers, in the same process group, get a
Ctrl-C from the terminal themselves; a worker still running ``FORWARD_AFTER_S`` later (the
signal went to the parent alone) is sent it; a second signal kills the workers at once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import wait
from typing import Any

from cnnlab.console import progress_bar

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Seconds the workers get to stop by themselves after a signal (a Ctrl-C reaches them too)
# before the parent sends it on: a worker stops its trial and queues it again in well under
# this, and a second signal in the middle of that would break it.
FORWARD_AFTER_S = 10.0


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, cpu_cores() // max(1, workers))


def _child(target: Callable[..., Any], args: tuple, threads: int, parent: int) -> None:
    # A parent killed with SIGKILL cannot stop its workers: without this they went on training
    # unseen, and a `--resume` started beside them wrote the same run folders.
    from cnnlab.data.parallel import die_with_parent

    die_with_parent(parent)
    # Read by torch when the target first imports it: its intra-op pool gets this size.
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    from cnnlab.console import set_quiet

    set_quiet(True)  # the parent draws the progress bar
    try:
        target(*args)
    except KeyboardInterrupt as exc:  # the parent says what was kept and how to go on
        sys.exit(128 + int(getattr(exc, "signum", signal.SIGINT)))
    except Exception as exc:
        from cnnlab.schedule.storage import STORAGE_LOST_EXIT, storage_error

        if storage_error(exc) is None:
            raise
        sys.exit(STORAGE_LOST_EXIT)  # the parent says it in one line


def run_pool(
    workers: int,
    target: Callable[..., Any],
    args: tuple,
    progress: Callable[[], tuple[int, int]] | None = None,
    description: str = "runs",
) -> list[int]:
    """Run ``target(*args)`` in ``workers`` fresh processes and wait for all of them.

    Args:
        workers: number of processes.
        target: an importable function (it is pickled by name for the ``spawn`` start).
        args: its arguments (picklable).
        progress: returns ``(finished, total)``; polled every second for the progress bar.
        description: label of the progress bar.

    Returns:
        The exit code of each process (0 when it ended normally).

    Raises:
        KeyboardInterrupt: SIGINT or SIGTERM came (its ``signum`` says which); the workers
            have stopped.
    """
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    threads = threads_per_worker(workers)
    procs = [
        ctx.Process(
            target=_child, args=(target, args, threads, os.getpid()), name=f"cnnlab-worker-{i}"
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        with _Signals() as signals:
            _wait(procs, workers, progress, description, signals)
            if signals.got:
                _stop(procs, signals)
                interrupt = KeyboardInterrupt()
                interrupt.signum = signals.got[0]  # type: ignore[attr-defined]
                raise interrupt
    except BaseException:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
    return [int(p.exitcode or 0) for p in procs]


def _wait(
    procs: list[Any],
    workers: int,
    progress: Callable[[], tuple[int, int]] | None,
    description: str,
    signals: _Signals,
) -> None:
    """Show progress until every worker has ended or a stop signal came."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=None, extra=f"{workers} workers")
        lines = _Lines(bar, description)
        polled = _Poll(progress)
        while not signals.got and (alive := [p for p in procs if p.is_alive()]):
            if (counts := polled()) is not None:
                bar.update(task, completed=counts[0], total=counts[1])
                lines.update(*counts)
            wait([p.sentinel for p in alive], timeout=1.0)
        if not signals.got and (counts := polled()) is not None:
            bar.update(task, completed=counts[0], total=counts[1])


class _Poll:
    """``progress()``, tolerating a storage that does not answer for a while: the workers
    decide whether the work can go on (they end with ``STORAGE_LOST_EXIT`` when not)."""

    def __init__(self, progress: Callable[[], tuple[int, int]] | None) -> None:
        self.progress, self.warned = progress, False

    def __call__(self) -> tuple[int, int] | None:
        from cnnlab.console import warn
        from cnnlab.errors import brief
        from cnnlab.schedule.storage import storage_error

        if self.progress is None:
            return None
        try:
            return self.progress()
        except Exception as exc:
            cause = storage_error(exc)
            if cause is None:
                raise
            if not self.warned:
                warn(f"the storage does not answer ({brief(str(cause), 120)}); workers go on")
                self.warned = True
            return None


def _stop(procs: list[Any], signals: _Signals) -> None:
    """Wait for the workers to stop after a signal: send it on to any still running after
    ``FORWARD_AFTER_S``, kill them all at a second signal."""
    first, deadline, forwarded = len(signals.got), time.monotonic() + FORWARD_AFTER_S, False
    while alive := [p for p in procs if p.is_alive()]:
        if len(signals.got) > first:
            for proc in alive:
                proc.kill()
        elif not forwarded and time.monotonic() >= deadline:
            for proc in alive:
                os.kill(proc.pid, signals.got[0])
            forwarded = True
        wait([p.sentinel for p in alive], timeout=0.2)


class _Signals:
    """Notes SIGINT and SIGTERM instead of raising where they land (main thread only; a
    signal the process ignores stays ignored)."""

    def __init__(self) -> None:
        self.got: list[int] = []
        self.before: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in _STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self.before[signum] = signal.signal(signum, self._note)
        return self

    def _note(self, signum: int, frame: object) -> None:
        self.got.append(signum)

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.before.items():
            signal.signal(signum, handler)


class Pace:
    """How fast this process finishes jobs, and so when the rest will be done."""

    def __init__(self, done: int | None = None) -> None:
        """``done``: jobs finished before (None: learnt as one less at the first :meth:`eta`,
        for callers told after each job)."""
        self.start, self.before = time.monotonic(), done

    def eta(self, done: int, total: int) -> str:
        if self.before is None:
            self.before = done - 1
        here = done - self.before
        if done >= total:
            return "0:00:00"
        if here <= 0:
            return "-"
        return str(
            timedelta(seconds=round((time.monotonic() - self.start) / here * (total - done)))
        )


class _Lines:
    """Without a terminal (a log file, CI) a progress bar shows nothing until it ends: one
    line each time more work is finished, with an ETA from this pool's pace."""

    def __init__(self, bar: Any, description: str) -> None:
        self.bar, self.description = bar, description
        self.pace: Pace | None = None
        self.last: int | None = None

    def update(self, done: int, total: int) -> None:
        if self.bar.console.is_terminal or self.bar.disable or done == self.last:
            return
        if self.pace is None:
            self.pace = Pace(done)  # finished before this pool started (a resume)
        else:
            eta = self.pace.eta(done, total)
            self.bar.console.print(f"{self.description}: {done}/{total} finished; eta {eta}")
        self.last = done
