"""A run's figures drawn while the next run trains: studies and tunes use it.

Drawing a run's PNGs and report is single-threaded matplotlib work of a few CPU seconds
(bench/bench_overhead.py). Inside :func:`deferred_figures`, ``finalize`` writes every number
first (predictions, metrics, summary), hands the drawing to a forked child
(:meth:`PlotJobs.start <cnnlab.evaluation.plotjobs.PlotJobs.start>`) and returns: a study's
next cell starts training on the other core while the child draws. Leaving the context waits
for every drawing, so when a study or a tune returns, every run folder is complete, as it is
outside the context (where ``finalize`` draws before returning).

What must see a finished folder waits for it: :func:`when_drawn` runs a callback once a run's
drawing is done (experiment tracking sends the run's end then, so its report and plots are
logged), and :func:`wait` blocks until every pending drawing is done.

Example:
    >>> with deferred_figures():  # doctest: +SKIP
    ...     for cfg in cells:
    ...         fit_config(cfg)   # returns once its numbers are written
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_depth = 0  # nesting of deferred_figures in this process
_share = False  # the outermost deferred_figures draws a share of each run's plots when it waits
_strict = False  # ... and a drawing that fails raises instead of costing a warning
_pending: dict[Path, Any] = {}  # run folder -> Drawing not yet waited for
_callbacks: dict[Path, list[Callable[[], None]]] = {}
_at_exit: list[Callable[[], None]] = []  # run when the outermost deferred_figures ends


@contextlib.contextmanager
def deferred_figures(share: bool = False, strict: bool = False) -> Iterator[None]:
    """Let runs finished inside return before their figures are drawn; wait for all at exit.

    ``share``: this process has nothing else to do when it waits (a lone ``cnnlab train``
    prints its results and ends), so it draws a share of each run's plots then, and the report
    exists as soon as if it had been drawn before returning
    (:meth:`~cnnlab.evaluation.plotjobs.PlotJobs.start`). ``strict``: a figure or report that
    cannot be drawn (a full disk) raises when waited for, as it would have from ``fit``,
    instead of a warning that lets a study go on. Both are ignored when nested.
    """
    global _depth, _share, _strict
    if _depth == 0:
        _share, _strict = share, strict
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            try:
                wait()
            finally:
                hooks = list(_at_exit)
                _at_exit.clear()
            for hook in hooks:
                hook()


def deferring() -> bool:
    """Whether ``finalize`` may return before the run's figures exist."""
    return _depth > 0


def sharing() -> bool:
    """Whether the waiting process draws a share of the plots (``deferred_figures(share=True)``)."""
    return _depth > 0 and _share


def add(run_dir: Path, drawing: Any) -> None:
    """Follow ``drawing`` (a :class:`~cnnlab.evaluation.plotjobs.Drawing`) for ``run_dir``."""
    reap()
    _pending[Path(run_dir)] = drawing


def is_drawing(run_dir: Path) -> bool:
    """Whether ``run_dir``'s figures are still to be waited for (False for a run that drew
    nothing here, such as a finished run ``--resume`` left untouched)."""
    return Path(run_dir) in _pending


def when_drawn(run_dir: Path, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``run_dir``'s figures exist (now, if they already do)."""
    if Path(run_dir) in _pending:
        _callbacks.setdefault(Path(run_dir), []).append(callback)
    else:
        callback()


def when_all_drawn(callback: Callable[[], None]) -> None:
    """Call ``callback`` when the outermost :func:`deferred_figures` ends (now if none is
    open): the study or tune is over and every figure exists."""
    if _depth > 0:
        if callback not in _at_exit:  # each run of a study asks for the same tracker start
            _at_exit.append(callback)
    else:
        callback()


def _finish(run_dir: Path) -> None:
    drawing = _pending.pop(run_dir, None)
    try:
        if drawing is not None:
            drawing.wait()
    except Exception as exc:  # one run's figure must not end the study that waits for it
        if _strict:  # ... but a lone run's command fails as it would have without deferring
            _callbacks.pop(run_dir, None)
            raise
        from cnnlab.console import warn

        warn(f"{run_dir}: its figures or report could not be drawn ({exc}); its numbers are "
             "complete")  # fmt: skip
    for callback in _callbacks.pop(run_dir, []):
        callback()


def reap() -> None:
    """Finish the drawings that are already done, without blocking on the others."""
    for run_dir in [r for r, d in _pending.items() if d.done()]:
        _finish(run_dir)


def wait() -> None:
    """Block until every pending run's figures are drawn."""
    for run_dir in list(_pending):
        _finish(run_dir)
