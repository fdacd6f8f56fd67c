"""Run a per-chunk worker function over many files on all cores, with one progress bar.

Decoding images is CPU-bound and Pillow holds the GIL, so processes (not threads) are what
scale. Workers are forked (as DataLoader workers are) so a user's script is never re-imported;
the worker functions live in torch-free modules and never touch torch's thread pools.

Workers die with the process that started them. A worker waits for tasks on a pipe whose write
end its sibling workers hold too, so it never sees end-of-file when its parent is killed
(``kill -9`` runs no cleanup) and would otherwise live on for good, holding whatever it
inherited. On Linux the kernel kills it (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread in
the worker watches for its parent to go.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from cnnlab.console import counting

T = TypeVar("T")
R = TypeVar("R")
MIN_PARALLEL = 200  # files; below this the pool's start-up costs more than it saves
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_S = 1.0  # how often a worker without PR_SET_PDEATHSIG checks that its parent lives


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def map_chunks(
    fn: Callable[..., list[R]],
    items: Sequence[T],
    *args: Any,
    description: str = "working",
    progress: bool = True,
    workers: int | None = None,
    chunk_size: int | None = None,
    sink: Callable[[int, list[R]], None] | None = None,
) -> list[R]:
    """``fn(chunk, *args)`` over consecutive chunks of ``items``; results in input order.

    ``fn`` must be a top-level function returning one result per item of its chunk. With
    ``sink``, each chunk's results go to ``sink(start_index, results)`` as they arrive and
    nothing is kept (so a decode larger than memory can stream into a file).
    """
    workers = workers or default_workers()
    if not items:
        return []
    if chunk_size is None:
        # ~8 chunks per worker: small enough to balance, large enough to amortise IPC.
        chunk_size = max(8, min(256, len(items) // (workers * 8) + 1))
    chunks = [list(items[i : i + chunk_size]) for i in range(0, len(items), chunk_size)]
    if workers == 1 or len(items) < MIN_PARALLEL:
        results = []
        with counting(description, len(items), progress) as advance:
            for i, chunk in enumerate(chunks):
                part = fn(chunk, *args)
                if sink is None:
                    results.append(part)
                else:
                    sink(i * chunk_size, part)
                advance(len(chunk))
        return [r for part in results for r in part]
    return _in_pool(fn, chunks, args, description, progress, workers, chunk_size, sink)


def _in_pool(
    fn: Callable[..., list[R]],
    chunks: list[list[T]],
    args: tuple[Any, ...],
    description: str,
    progress: bool,
    workers: int,
    chunk_size: int,
    sink: Callable[[int, list[R]], None] | None,
) -> list[R]:
    """Fork the workers before the progress bar starts its thread (forking a threaded
    process is unsafe); forking also means a user's script is never re-imported."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    results: list[list[R] | None] = [None] * len(chunks)
    pool = ProcessPoolExecutor(
        min(workers, len(chunks)),
        mp_context=context,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    with pool:
        futures = {pool.submit(fn, chunk, *args): i for i, chunk in enumerate(chunks)}
        with counting(description, sum(len(c) for c in chunks), progress) as advance:
            for future in as_completed(futures):
                i = futures.pop(future)
                if sink is None:
                    results[i] = future.result()
                else:
                    sink(i * chunk_size, future.result())
                advance(len(chunks[i]))
    return [r for part in results for r in (part or [])]


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when ``parent`` (the process that forked it) dies."""
    if not _kill_on_parent_death():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # it died before the request above took effect
        os._exit(1)


def _kill_on_parent_death() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is unknown."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(1)
