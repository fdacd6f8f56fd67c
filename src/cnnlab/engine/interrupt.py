"""Ctrl-C (SIGINT) and SIGTERM during training: stop cleanly, keep the run resumable, say so.

Lightning catches a ``KeyboardInterrupt`` inside ``Trainer.fit``, tears the run down and then,
since 2.4, calls ``sys.exit(1)`` (earlier versions returned as if training had finished); a
SIGTERM becomes its ``SIGTERMException``, a ``SystemExit`` with exit status 0. Either way the
caller could not tell an interrupted run from a failed or a finished one. :func:`fit_or_raise`
learns of the signal through Lightning's public ``Callback.on_exception`` hook and raises
:class:`~cnnlab.errors.Interrupted` after ``fit`` however Lightning ended it, so observers
record the run as KILLED and the CLI exits 130 (143 for SIGTERM) with a resume hint.

A checkpoint save holds Ctrl-C until the file is complete (:func:`interrupts_held`): a
Ctrl-C that lands mid-save would otherwise throw the finished epoch away.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from cnnlab.errors import Interrupted


class InterruptWatch(Callback):
    """Notes which signal stopped ``fit`` (``None``: none)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, KeyboardInterrupt):
            self.signum = signal.SIGINT
        elif isinstance(exception, SIGTERMException):
            self.signum = signal.SIGTERM


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def fit_or_raise(fit: Callable[[], Any], watch: InterruptWatch, run_dir: Path) -> None:
    """Call ``fit`` (``trainer.fit(...)`` with ``watch`` among its callbacks); raise
    :class:`Interrupted` if a signal stopped it.

    Lightning leaves Ctrl-C ignored from the first one on (so a second cannot break its
    shutdown); the handler in place before ``fit`` is put back, or a notebook or a study
    could not be interrupted again.
    """
    before = signal.getsignal(signal.SIGINT) if _main_thread() else None
    try:
        fit()
    except KeyboardInterrupt:  # a Lightning that lets it through, or one outside its guard
        watch.signum = watch.signum or signal.SIGINT
    except SystemExit:  # Lightning's exit after a Ctrl-C or a SIGTERM
        if watch.signum is None:
            raise
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)
    if watch.signum is not None:
        raise Interrupted(watch.signum, _kept(run_dir), f"cnnlab train --resume {run_dir}")


def _kept(run_dir: Path) -> str:
    """What a resume of ``run_dir`` would start from, read from the checkpoint itself: the
    epoch's metrics row is written before its checkpoints, so counting rows can be one ahead."""
    from cnnlab.engine.checkpoint import resume_epoch

    epoch = resume_epoch(run_dir)
    if epoch:
        return f"{run_dir} keeps its checkpoint of epoch {epoch}"
    return f"{run_dir} has no complete epoch yet (a resume starts it from epoch 1)"


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it (``KeyboardInterrupt``) as usual.

    For short sections that must not stop half-way (writing a checkpoint). Only in the main
    thread (where Python runs signal handlers) and only when Ctrl-C would raise: an ignored
    or replaced handler is left alone.
    """
    if not _main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt
