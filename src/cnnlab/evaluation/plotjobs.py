"""Draw a run's plots together, split across processes when cores are free.

Drawing a PNG is single-threaded matplotlib work, and a run draws thirteen of them at the end
(issue 11: the plots were most of a short run's wrap-up). So callers collect them first in a
:class:`PlotJobs` and draw them at once, in shares of about equal cost: one share here and
one in each forked child process (up to three children, one per free core). A child inherits
everything already imported (matplotlib, fonts, the data to plot), writes its PNGs, says so
through a pipe and exits. If it fails, dies or hangs, its share is drawn here instead, so the
files written never depend on the fork.

By default forking is used only on Linux (elsewhere it is unavailable or unsafe with system
frameworks), only with at least two usable cores, and only when the machine is not already
busy (1-minute load average below cores + 1; this run's own training counts for up to the
core count). Measured on a 2-core machine loaded 6x over by other work, the fork made the
plots 0.8x as fast: with no core free, it only adds its cost. Four shares at most: the
largest job of a run (its Grad-CAMs, about a quarter of the work) bounds the time beyond that.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Rough relative cost of each plot (measured in bench/bench_overhead.py's sessions), used to
# give both processes about the same work; unknown functions count as 1.
_COST = {
    "plot_confusion_matrix": 3.0,
    "plot_learning_curves": 3.0,
    "plot_worst_mistakes": 2.5,
    "plot_reliability": 1.5,
    "plot_per_class_f1": 1.0,
    "plot_cam_gallery": 1.0,
    "plot_embedding": 1.0,
    # the Grad-CAMs of two galleries (the model's passes, grad-cam's import the first time)
    # and the three figures they return, which the process that computed them draws
    "explain_jobs": 6.0,
}
_CHILD_WAIT_S = 120.0  # longest wait for the children's shares after ours is done (then: redraw)
_MAX_PROCESSES = 4  # shares of a run's plots drawn at once: this process and 3 children
_EXIT_WAIT_S = 2.0  # how long a child that reported may take to exit before it is killed

Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_processes() -> int:
    """One process per usable core, up to 4, where forking is safe and the machine is not
    busy with other work; else 1."""
    cores = usable_cores()
    if not sys.platform.startswith("linux") or cores < 2:
        return 1
    return min(cores, _MAX_PROCESSES) if os.getloadavg()[0] < cores + 1 else 1


@dataclass
class PlotJobs:
    """Plot calls collected now and drawn later, all at once.

    Args:
        processes: 1 draws everything in this process; N forks N - 1 helpers, each drawing
            a share (0: :func:`default_processes`).

    Example:
        >>> jobs = PlotJobs()  # doctest: +SKIP
        >>> jobs.add(plot_reliability, probs, y, "plots/reliability.png")  # doctest: +SKIP
        >>> jobs.draw()  # doctest: +SKIP
    """

    processes: int = 0
    jobs: list[Job] = field(default_factory=list)
    producers: list[Job] = field(default_factory=list)

    def add(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.jobs.append((fn, args, kwargs))

    def add_here(self, fn: Callable[..., list[Job]], *args: Any, **kwargs: Any) -> None:
        """A job that must run in this process (it uses the model, which a forked child must
        not: torch's thread pool is not fork-safe) and returns more plot jobs, drawn anywhere.

        It runs as late as the files allow: while forked children draw the other plots when
        they can (:meth:`draw`, :meth:`start` with ``share``), else before the fork. With
        three or more processes, the jobs it returns are shared out to new children too.
        """
        self.producers.append((fn, args, kwargs))

    def _take(self) -> tuple[list[Job], list[Job]]:
        jobs, producers, self.jobs, self.producers = self.jobs, self.producers, [], []
        return jobs, producers

    def draw(self) -> None:
        """Draw every collected plot; on return all their files exist. Empties the list."""
        jobs, producers = self._take()
        processes = self.processes or default_processes()
        if processes < 2 or len(jobs) < 2 or not _can_fork():
            _draw_here([*_produce(producers), *jobs])
            return
        _fork_shares(jobs, producers, None, processes).wait()

    def start(self, then: Callable[[], Any], share: bool = False) -> Drawing:
        """Draw every collected plot and then call ``then`` in a forked child; return at once.

        This process goes on (a study's next run trains) while one child draws everything;
        call :meth:`Drawing.wait` before anything reads the files. With ``share``, the caller
        means to be idle when it waits (``cnnlab train`` prints its results meanwhile): the
        plots are split as by :meth:`draw`, :meth:`Drawing.wait` draws this process's share
        and then calls ``then``, so the files exist as soon as with :meth:`draw`. With
        ``processes=1`` or where forking is unavailable, everything is done here before
        returning. Empties the list.
        """
        jobs, producers = self._take()
        if self.processes == 1 or not _can_fork():
            _draw_here([*_produce(producers), *jobs, (then, (), {})])
            return Drawing([])
        processes = self.processes or default_processes()
        if share and len(jobs) >= 2 and processes >= 2:
            return _fork_shares(jobs, producers, then, processes)
        return Drawing([_fork([*_produce(producers), *jobs, (then, (), {})])])


@dataclass
class _Child:
    """A forked child drawing ``jobs`` and the pipe it reports through."""

    process: Any
    conn: Any
    jobs: list[Job]  # drawn here again if the child fails

    def reported(self) -> bool:
        return bool(self.conn.poll()) or not self.process.is_alive()

    def join(self, deadline: float) -> bool:
        """Wait for the child until ``deadline`` (monotonic); True if it drew its share."""
        try:
            wait = max(0.0, deadline - time.monotonic())
            ok = self.conn.poll(wait) and self.conn.recv() is None
        except EOFError:  # the child died without a word
            ok = False
        finally:
            self.conn.close()
            self.process.join(_EXIT_WAIT_S)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        return bool(ok)


@dataclass
class Drawing:
    """Plots being drawn by forked children (see :meth:`PlotJobs.start`)."""

    children: list[_Child]
    mine: list[Job] = field(default_factory=list)  # left for :meth:`wait` to draw here
    producers: list[Job] = field(default_factory=list)  # run by :meth:`wait`, then drawn
    then: Callable[[], Any] | None = None  # called here once every share is drawn
    processes: int = 1  # processes drawing at once (for the figures the producers return)

    def done(self) -> bool:
        """True once every child has reported (or died) and nothing is left to draw here:
        :meth:`wait` will not block long."""
        if self.mine or self.producers:
            return False
        return all(child.reported() for child in self.children)

    def wait(self) -> None:
        """Block until every file exists; what a child failed to draw is drawn here."""
        mine, producers, self.mine, self.producers = self.mine, self.producers, [], []
        then, self.then = self.then, None
        try:
            _draw_here(self._share_out([*_produce(producers), *mine]) if producers else mine)
        finally:
            self._join()
        if then is not None:
            then()

    def _share_out(self, jobs: list[Job]) -> list[Job]:
        """With three or more processes, fork more children for the figures the producers
        returned (the Grad-CAM galleries and the embedding: computed after the first children
        were forked, and otherwise all drawn here, the longest share of a run); the share
        left for this process."""
        if self.processes < 3 or len(jobs) < 2:
            return jobs
        mine, *theirs = split_by_cost(jobs, shares=min(self.processes, len(jobs)))
        self.children += [_fork(share) for share in theirs if share]
        return mine

    def _join(self) -> None:
        children, self.children = self.children, []
        deadline = time.monotonic() + _CHILD_WAIT_S
        failed = [child for child in children if not child.join(deadline)]
        for child in failed:
            _draw_here(child.jobs)


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def _draw_here(jobs: list[Job]) -> None:
    for fn, args, kwargs in jobs:
        fn(*args, **kwargs)


def _produce(producers: list[Job]) -> list[Job]:
    """Run the :meth:`PlotJobs.add_here` jobs; the plot jobs they return."""
    return [job for fn, args, kwargs in producers for job in fn(*args, **kwargs)]


def _cost(job: Job) -> float:
    return _COST.get(getattr(job[0], "__name__", ""), 1.0)


def split_by_cost(jobs: list[Job], here: Sequence[Job] = (), shares: int = 2) -> list[list[Job]]:
    """``shares`` lists of about equal cost (largest job first, each to the lightest share,
    the first on ties); the first is this process's and already carries the cost of the
    ``here`` jobs."""
    split: list[list[Job]] = [[] for _ in range(shares)]
    loads = [sum(_cost(j) for j in here)] + [0.0] * (shares - 1)
    for job in sorted(jobs, key=lambda j: -_cost(j)):
        i = loads.index(min(loads))
        split[i].append(job)
        loads[i] += _cost(job)
    return split


def _child_main(jobs: list[Job], conn: Any) -> None:
    """In the forked child: draw, then send None (done) or the error's text."""
    try:
        _draw_here(jobs)
        conn.send(None)
    except BaseException as exc:  # the parent draws this share itself and sees the error
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _fork_shares(
    jobs: list[Job], producers: list[Job], then: Callable[[], Any] | None, processes: int
) -> Drawing:
    """Forked children draw all but one share of ``jobs``; the Drawing's ``wait`` runs the
    producers and draws the remaining share here, then calls ``then``."""
    mine, *theirs = split_by_cost(jobs, here=producers, shares=min(processes, len(jobs)))
    children = [_fork(share) for share in theirs if share]
    return Drawing(children, mine, producers, then, processes)


def _fork(jobs: list[Job]) -> _Child:
    """Start a forked child drawing ``jobs``."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(jobs, send), daemon=True)
    with warnings.catch_warnings():
        # Python >= 3.12 warns about forking a process that has threads (torch's pool); the
        # child only runs matplotlib and numpy, and a child that hangs is redrawn here.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    send.close()
    return _Child(child, receive, jobs)
