"""K worker processes on one machine, the CPU threads split between them.

Small models on a few CPU cores train faster as several runs side by side than as one run
using every core (a convolution on a 32-px batch does not keep many threads busy), so
``--workers K`` starts K processes that each run :func:`~cnnlab.schedule.worker.run_worker`
on the same storage with ``cores // K`` threads. The parent only shows progress, read from
the storage, and waits.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import wait
from typing import Any

from cnnlab.console import progress_bar

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    return max(1, cpu_cores() // max(1, workers))


def _child(target: Callable[..., Any], args: tuple, threads: int) -> None:
    # Read by torch when the target first imports it: its intra-op pool gets this size.
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    from cnnlab.console import set_quiet

    set_quiet(True)  # the parent draws the progress bar
    try:
        target(*args)
    except KeyboardInterrupt as exc:
        # Ctrl-C reaches the parent too, which says how to continue the study or tune; this
        # worker's own advice (a traceback ending in `cnnlab train --resume RUN`) is wrong there.
        raise SystemExit(128 + getattr(exc, "signum", signal.SIGINT)) from None


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
    """
    ctx = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    threads = threads_per_worker(workers)
    procs = [
        ctx.Process(target=_child, args=(target, args, threads), name=f"cnnlab-worker-{i}")
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        with progress_bar() as bar:
            task = bar.add_task(description, total=None, extra=f"{workers} workers")
            lines = _Lines(bar, description)
            while alive := [p for p in procs if p.is_alive()]:
                if progress is not None:
                    done, total = progress()
                    bar.update(task, completed=done, total=total)
                    lines.update(done, total)
                wait([p.sentinel for p in alive], timeout=1.0)
            if progress is not None:
                done, total = progress()
                bar.update(task, completed=done, total=total)
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
    return [int(p.exitcode or 0) for p in procs]


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
