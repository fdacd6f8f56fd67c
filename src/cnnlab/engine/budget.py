"""Hold ``train.max_time`` at any dataset size: stop mid-epoch, early enough to validate.

Lightning's ``max_time`` (its ``Timer`` callback, checked after every batch) stops training
mid-epoch, and then runs the validation pass over the whole val split before fit ends. On a
large val split that pass alone can cost longer than the budget. :class:`TimeBudget` stops one
validation pass early: after each batch it compares the time the Timer has left with what the
coming validation will take (the last validation's duration, or before the first one an
estimate from the training speed), so the run ends within a few seconds of the budget and
still has a validated, checkpointed epoch to evaluate and report.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, Timer

# An evaluation forward pass costs about a third of a training step (no backward, no
# optimizer): the factor that turns training seconds per image into validation seconds.
EVAL_SPEEDUP = 3.0


def validation_estimate(
    val_images: int, train_s_per_image: float, last_val_s: float | None
) -> float:
    """Seconds the next validation will take: the last one's, else guessed from training."""
    if last_val_s is not None:
        return last_val_s
    return val_images * train_s_per_image / EVAL_SPEEDUP


class TimeBudget(Callback):
    """Stop training when the Timer's remaining time only just covers a validation pass."""

    def __init__(self, val_images: int) -> None:
        self.val_images = val_images
        self.last_val_s: float | None = None
        self._val_start = 0.0
        self._batch_start = 0.0
        self._train_s = 0.0  # training seconds this process measured
        self._train_images = 0

    def _timer(self, trainer: L.Trainer) -> Timer | None:
        return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        self._train_images += int(getattr(x, "shape", [0])[0])
        self._train_s += time.perf_counter() - self._batch_start
        timer = self._timer(trainer)
        remaining = timer.time_remaining("train") if timer is not None else None
        if remaining is None or self._train_images == 0:
            return
        per_image = self._train_s / self._train_images
        need = validation_estimate(self.val_images, per_image, self.last_val_s)
        # every rank decides together (as Lightning's Timer does), so DDP ranks stop in step
        if trainer.strategy.reduce_boolean_decision(remaining <= need, all=False):
            trainer.should_stop = True  # Lightning validates this partial epoch, then ends

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.last_val_s = time.perf_counter() - self._val_start
