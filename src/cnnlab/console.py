"""One rich console for all output, so ``--quiet`` silences everything in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=False, highlight=False)
_state = {"quiet": False}
LINE_EVERY_S = 10.0  # without a terminal: a plain progress line at most this often (seconds)
Observer = Callable[[str, int, int], None]
# Who else wants to see long work advance (the web app's progress bars): per thread and task,
# so two app sessions each see only their own work; told even under --quiet.
_observers: ContextVar[tuple[Observer, ...]] = ContextVar("cnnlab_progress", default=())


@contextmanager
def observe_progress(callback: Observer) -> Iterator[None]:
    """Call ``callback(description, done, total)`` as tracked work in this block advances.

    Example:
        >>> seen = []
        >>> with quietly(), observe_progress(lambda *a: seen.append(a)):  # no bar drawn
        ...     _ = list(track(range(2), "counting", total=2))
        >>> seen
        [('counting', 0, 2), ('counting', 1, 2), ('counting', 2, 2)]
    """
    token = _observers.set((*_observers.get(), callback))
    try:
        yield
    finally:
        _observers.reset(token)


def notify(description: str, done: int, total: int) -> None:
    """Tell this block's observers (:func:`observe_progress`) that ``done`` of ``total``
    units of ``description`` are finished; nothing is drawn here."""
    for callback in _observers.get():
        callback(description, done, total)


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet
    console.quiet = quiet


def is_quiet() -> bool:
    return _state["quiet"]


@contextmanager
def quietly() -> Iterator[None]:
    """Silence ``info`` output inside the block (a study's runs), then restore the setting."""
    before = _state["quiet"]
    set_quiet(True)
    try:
        yield
    finally:
        set_quiet(before)


def info(message: str) -> None:
    """Print a line unless ``--quiet``.

    Soft wrap: rich would otherwise break long lines at 80 columns when output is piped, cutting
    paths and phrases that scripts (and users copying a path) need whole. Never markup: a file
    named ``a [/b].jpg`` must print as it is, not raise a MarkupError or turn bold.
    """
    from rich.markup import escape

    console.print(escape(message), soft_wrap=True)


@dataclass
class _Printed:
    """Warnings already printed in a :func:`warnings_once` block, and the repeats held."""

    messages: set[str] = field(default_factory=set)
    held: int = 0


_printed: ContextVar[_Printed | None] = ContextVar("cnnlab_warned", default=None)


@contextmanager
def warnings_once() -> Iterator[None]:
    """Print each distinct warning once inside the block, then say how many repeats were held.

    A study's or tune's runs share one dataset, so each run used to repeat the same data
    warnings (two lines per run: 40 identical lines for a 20-trial tune). A warning whose text
    differs (another run, another file) is still printed. Tested in tests/test_console.py
    (warnings go to stderr, which a doctest does not see).
    """
    printed = _Printed()
    token = _printed.set(printed)
    try:
        yield
    finally:
        _printed.reset(token)
        if printed.held:
            info(f"{printed.held} repeated warning line(s) not shown again")


def warn(message: str) -> None:
    """Warnings are printed even with ``--quiet``; they go to stderr (never markup, as info)."""
    printed = _printed.get()
    if printed is not None:
        if message in printed.messages:
            printed.held += 1
            return
        printed.messages.add(message)
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(
        f"[yellow]warning:[/] {escape(message)}", soft_wrap=True
    )


def error(message: str) -> None:
    """One ``error:`` line on stderr (the CLI's way to report a failure; never markup)."""
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(
        f"[bold red]error:[/] {escape(message)}", soft_wrap=True
    )


def progress_bar(transient: bool = False, out: Console | None = None) -> Progress:
    """A progress bar with count, elapsed time and ETA.

    ``out``: draw on this console instead of the shared one, so the bar stays visible while
    the work it tracks runs quietly (a study's runs); ``--quiet`` still hides it.
    """
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[extra]}"),
        console=out or console,
        transient=transient,
        disable=_state["quiet"],
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


class StageProgress:
    """Long work as text: which stage runs, how far it is, the time it has taken and an
    estimate of what is left (from its own pace so far). The web app's progress bars show it,
    and so does :func:`counting` as plain lines where no bar can be drawn (a log file, CI).

    Called as an observer (:func:`observe_progress`); ``show(fraction, text)`` is called at
    most every ``every`` seconds, and at each stage's end. ``lazy``: a stage says nothing
    until it has run ``every`` seconds, so quick work prints no line at all.

    Example:
        >>> seen, times = [], iter([0.0, 10.0])
        >>> bar = StageProgress(lambda *shown: seen.append(shown), clock=lambda: next(times))
        >>> bar("computing features (view 1/1)", 0, 400)
        >>> bar("computing features (view 1/1)", 100, 400)
        >>> seen[-1]
        (0.25, 'computing features (view 1/1): 100/400, 0:10 so far, about 0:30 left')
    """

    def __init__(
        self, show: Callable, every: float = 0.25, clock: Callable | None = None, lazy: bool = False
    ) -> None:
        import time

        self.show, self.every, self.lazy = show, every, lazy
        self.clock = clock or time.monotonic
        self.stage: str | None = None
        self.start = self.last = 0.0
        self.shown = False

    def __call__(self, description: str, done: int, total: int) -> None:
        now = self.clock()
        if description != self.stage:
            self.stage, self.start, self.shown = description, now, False
            self.last = now if self.lazy else now - self.every
        ended = 0 < total <= done  # an unknown total (0) never ends early
        if now - self.last < self.every and not (ended and (self.shown or not self.lazy)):
            return
        self.last, self.shown = now, True
        elapsed = now - self.start
        text = f"{description}: {done}/{total}" if total else f"{description}: {done}"
        text += f", {_clock(elapsed)} so far"
        if 0 < done < total:
            text += f", about {_clock(elapsed * (total - done) / done)} left"
        self.show(min(1.0, done / total) if total else 0.0, text)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (silent under ``--quiet``)."""
    with counting(description, total) as advance:
        for item in items:
            yield item
            advance(1)


@contextmanager
def counting(
    description: str, total: int | None, show: bool = True
) -> Iterator[Callable[[int], None]]:
    """A transient bar over ``total`` units (None: unknown); yields ``advance(n)``. Observers
    (:func:`observe_progress`) are told either way (an unknown total as 0); ``show=False``
    draws nothing.

    Without a terminal (a log file, CI) a bar shows nothing, so work that runs longer than
    :data:`LINE_EVERY_S` prints a plain :class:`StageProgress` line that often instead
    (``computing features (view 1/1): 640/1836, 0:35 so far, about 1:05 left``).

    Example:
        >>> seen = []
        >>> with observe_progress(lambda *a: seen.append(a)), counting("images", 5, False) as add:
        ...     add(3); add(2)
        >>> seen
        [('images', 0, 5), ('images', 3, 5), ('images', 5, 5)]
    """
    done, told_total = [0], total or 0

    def tell(n: int) -> None:
        done[0] += n
        notify(description, done[0], told_total)

    notify(description, 0, told_total)
    if not show:
        yield tell
        return
    if not console.is_terminal:  # where a bar draws nothing (but a blank line at its end)
        lines = StageProgress(lambda _, text: info(text), every=LINE_EVERY_S, lazy=True)

        def step(n: int) -> None:
            tell(n)
            lines(description, done[0], told_total)

        yield step
        return
    with progress_bar(transient=True) as bar:
        task = bar.add_task(description, total=total, extra="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            tell(n)

        yield advance


_results = Console(highlight=False)


def result(renderable: object, width: int | None = None) -> None:
    """Print a result (a table, the report path): shown even with ``--quiet``.

    ``width`` overrides the terminal's width (a wide table printed in full). Strings are never
    hard-wrapped (see :func:`info`).
    """
    out = _results if width is None else Console(highlight=False, width=width)
    out.print(renderable, soft_wrap=isinstance(renderable, str))
