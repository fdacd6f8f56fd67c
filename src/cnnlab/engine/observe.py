"""One seam for code that follows a run while it happens (experiment tracking, dashboards).

``fit`` tells each observer three things: the run folder exists (config, classes and split are
written), an epoch's row is in ``metrics.csv``, and the run ended (with its status). Observers
read everything else from the run folder, which stays the single source of truth. A failing
observer costs one warning, never the training.

Runs without Lightning epochs (a scikit-learn head on frozen features) write their one
``metrics.csv`` row before ``run_ended``; observers pick it up there.

An observer may end training early by raising :class:`StopRun` from ``epoch_ended`` (a tune's
pruner does): training stops after that epoch and the run is finished and reported as usual.
An observer may also have ``summary_fields()``: a dict ``fit`` adds to the run's
``summary.json`` before its report is written (a pruner records ``pruned`` there, so the run
itself says why it is short, see :func:`observer_fields`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cnnlab.console import warn

if TYPE_CHECKING:
    from cnnlab.config import Config

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


class StopRun(Exception):
    """Raised by an observer's ``epoch_ended`` to stop training after this epoch."""


class RunObserver(Protocol):
    """What ``fit`` calls; every method must return quickly (do slow work elsewhere)."""

    def run_started(self, run_dir: Path) -> None: ...

    def epoch_ended(self, run_dir: Path, epoch: int) -> None: ...

    def run_ended(self, run_dir: Path, status: str) -> None: ...


def default_observers(cfg: Config) -> list[RunObserver]:
    """The observers a config asks for (experiment tracking unless ``track.backend=none``)."""
    from cnnlab.track import observers_for

    return observers_for(cfg)


def _notify(observers: Sequence[RunObserver], method: str, *args: Any) -> None:
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except StopRun:
            raise
        except Exception as exc:  # an observer's bug must not stop the training
            warn(f"{type(observer).__name__}.{method} failed ({exc}); training continues")


def observer_fields(observers: Sequence[RunObserver]) -> dict[str, Any]:
    """What the observers add to the run's summary (those with a ``summary_fields`` method);
    a failing one costs a warning, like any observer's bug."""
    fields: dict[str, Any] = {}
    for observer in observers:
        method = getattr(observer, "summary_fields", None)
        if method is None:
            continue
        try:
            fields.update(method())
        except Exception as exc:
            warn(f"{type(observer).__name__}.summary_fields failed ({exc}); not recorded")
    return fields


def epoch_callback(observers: Sequence[RunObserver], run_dir: Path) -> Any:
    """A Lightning callback that reports each finished epoch (after metrics.csv is written)."""
    import lightning as L

    class _EpochObserver(L.Callback):
        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.is_global_zero and not trainer.sanity_checking:
                try:
                    _notify(observers, "epoch_ended", run_dir, trainer.current_epoch + 1)
                except StopRun:
                    trainer.should_stop = True  # Lightning ends the fit after this epoch

    return _EpochObserver()


@contextmanager
def observe_run(observers: Sequence[RunObserver], run_dir: Path) -> Iterator[tuple]:
    """Bracket a run's training and finishing; yields the Lightning callbacks to add."""
    if not observers:
        yield ()
        return
    _notify(observers, "run_started", run_dir)
    status = FAILED
    try:
        yield (epoch_callback(observers, run_dir),)
        status = FINISHED
    except KeyboardInterrupt:
        status = KILLED
        raise
    finally:
        _notify(observers, "run_ended", run_dir, status)
