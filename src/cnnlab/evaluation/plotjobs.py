"""Draw a run's plots together, split across two processes when a second core is free.

Drawing a PNG is single-threaded matplotlib work, and a run draws nine of them at the end
(issue 11: the plots were most of a short run's wrap-up). So callers collect them first in a
:class:`PlotJobs` and draw them at once: half in a forked child process, half here. The child
inherits everything already imported (matplotlib, fonts, the data to plot), writes its PNGs,
says so through a pipe and exits. If it fails, dies or hangs, its share is drawn here instead,
so the files written never depend on the fork.

By default forking is used only on Linux (elsewhere it is unavailable or unsafe with system
frameworks), only with at least two usable cores, and only when the machine is not already
busy (1-minute load average below cores + 1; this run's own training counts for up to the
core count). Measured on a 2-core machine loaded 6x over by other work, the fork made the
plots 0.8x as fast: with no core free, it only adds its cost.
"""

from __future__ import annotations

import os
import sys
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
_CHILD_WAIT_S = 120.0  # longest wait for the child's share after ours is done (then: redraw)
_EXIT_WAIT_S = 2.0  # how long a child that reported may take to exit before it is killed

Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_processes() -> int:
    """2 where forking is safe and a second core is likely free, else 1."""
    cores = usable_cores()
    if not sys.platform.startswith("linux") or cores < 2:
        return 1
    return 2 if os.getloadavg()[0] < cores + 1 else 1


@dataclass
class PlotJobs:
    """Plot calls collected now and drawn later, all at once.

    Args:
        processes: 1 draws everything in this process; 2 forks one helper (0: auto).

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

        It runs as late as the files allow: while a forked child draws the other plots when
        it can (:meth:`draw`, :meth:`start` with ``share``), else before the fork.
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
        _fork_half(jobs, producers, then=None).wait()

    def start(self, then: Callable[[], Any], share: bool = False) -> Drawing:
        """Draw every collected plot and then call ``then`` in a forked child; return at once.

        This process goes on (a study's next run trains) while the child draws; call
        :meth:`Drawing.wait` before anything reads the files. With ``share``, the caller means
        to be idle when it waits (``cnnlab train`` prints its results meanwhile): the child
        takes only half the plots, :meth:`Drawing.wait` draws the other half here and then
        calls ``then``, so the files exist as soon as with :meth:`draw`. With
        ``processes=1`` or where forking is unavailable, everything is done here before
        returning. Empties the list.
        """
        jobs, producers = self._take()
        if self.processes == 1 or not _can_fork():
            _draw_here([*_produce(producers), *jobs, (then, (), {})])
            return Drawing(None, None, [])
        if share and len(jobs) >= 2 and (self.processes or default_processes()) >= 2:
            return _fork_half(jobs, producers, then)
        return _fork([*_produce(producers), *jobs, (then, (), {})])


@dataclass
class Drawing:
    """Plots being drawn by a forked child (see :meth:`PlotJobs.start`)."""

    child: Any
    conn: Any
    jobs: list[Job]  # the child's share, drawn here again if it fails
    mine: list[Job] = field(default_factory=list)  # left for :meth:`wait` to draw here
    producers: list[Job] = field(default_factory=list)  # run by :meth:`wait`, then drawn
    then: Callable[[], Any] | None = None  # called here once both shares are drawn

    def done(self) -> bool:
        """True once the child has reported (or died) and nothing is left to draw here:
        :meth:`wait` will not block long."""
        if self.mine or self.producers:
            return False
        return self.child is None or self.conn.poll() or not self.child.is_alive()

    def wait(self) -> None:
        """Block until every file exists; what the child failed to draw is drawn here."""
        mine, producers, self.mine, self.producers = self.mine, self.producers, [], []
        then, self.then = self.then, None
        try:
            _draw_here([*_produce(producers), *mine])
        finally:
            self._join()
        if then is not None:
            then()

    def _join(self) -> None:
        if self.child is None:
            return
        child, conn, self.child = self.child, self.conn, None
        try:
            ok = conn.poll(_CHILD_WAIT_S) and conn.recv() is None
        except EOFError:  # the child died without a word
            ok = False
        finally:
            conn.close()
            child.join(_EXIT_WAIT_S)
            if child.is_alive():
                child.kill()
                child.join()
        if not ok:
            _draw_here(self.jobs)


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


def split_by_cost(jobs: list[Job], here: Sequence[Job] = ()) -> tuple[list[Job], list[Job]]:
    """Two shares of about equal cost (largest first, each to the lighter share); the first
    is this process's and already carries the cost of the ``here`` jobs."""
    shares: tuple[list[Job], list[Job]] = ([], [])
    loads = [sum(_cost(j) for j in here), 0.0]
    for job in sorted(jobs, key=lambda j: -_cost(j)):
        i = 0 if loads[0] <= loads[1] else 1
        shares[i].append(job)
        loads[i] += _cost(job)
    return shares


def _child_main(jobs: list[Job], conn: Any) -> None:
    """In the forked child: draw, then send None (done) or the error's text."""
    try:
        _draw_here(jobs)
        conn.send(None)
    except BaseException as exc:  # the parent draws this share itself and sees the error
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _fork_half(jobs: list[Job], producers: list[Job], then: Callable[[], Any] | None) -> Drawing:
    """A forked child draws about half of ``jobs``; the Drawing's ``wait`` runs the producers
    and draws the rest here, then calls ``then``."""
    mine, theirs = split_by_cost(jobs, here=producers)
    drawing = _fork(theirs)
    drawing.mine, drawing.producers, drawing.then = mine, producers, then
    return drawing


def _fork(jobs: list[Job]) -> Drawing:
    """Start a forked child drawing ``jobs``; the returned Drawing waits for it."""
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
    return Drawing(child, receive, jobs)
