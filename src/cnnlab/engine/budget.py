"""Hold ``train.max_time`` at any dataset size: stop mid-epoch, early enough to validate.

Lightning's ``max_time`` (its ``Timer`` callback, checked after every batch) stops training
mid-epoch, and then runs the validation pass over the whole val split before fit ends. On a
large val split that pass alone can cost longer than the budget. :class:`TimeBudget` stops one
validation pass early: after each batch it compares the time the Timer has left with what the
coming validation will take (the last validation's duration, or before the first one an
estimate from the training speed), so the run ends within a few seconds of the budget and
still has a validated, checkpointed epoch to evaluate and report.

A validation pass can itself be longer than the budget (a huge val split, a budget of
seconds): then even stopping after the first batch overruns by the whole pass. When the pass
would end more than :func:`allowed_overrun` past the budget, the guard skips it: the partial
epoch is checkpointed unvalidated, the best validated epoch (if any) is restored as usual, and
the final evaluation of val and test still follows (it is the run's wrap-up, never inside the
budget). The summary says so (``validation_skipped_by_time_budget``).
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, Timer

# An evaluation forward pass costs about a third of a training step (no backward, no
# optimizer): the factor that turns training seconds per image into validation seconds.
EVAL_SPEEDUP = 3.0


def allowed_overrun(budget_s: float) -> float:
    """Seconds past ``train.max_time`` a last validation may run: a few, or 5% of long budgets."""
    return max(5.0, 0.05 * budget_s)


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
        self._train_s = 0.0  # training seconds this process measured, all batches
        self._train_images = 0
        self._warm_s = 0.0  # the same without this process's first batch (its one-off costs)
        self._warm_images = 0
        self.skipped_validation = False  # the last, partial epoch was not validated
        self.cut_short = False  # the guard ended training before its last batch

    def _timer(self, trainer: L.Trainer) -> Timer | None:
        return next((c for c in trainer.callbacks if isinstance(c, Timer)), None)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, i: int
    ) -> None:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        images, seconds = int(getattr(x, "shape", [0])[0]), time.perf_counter() - self._batch_start
        if self._train_images:
            self._warm_s, self._warm_images = self._warm_s + seconds, self._warm_images + images
        self._train_s, self._train_images = self._train_s + seconds, self._train_images + images
        timer = self._timer(trainer)
        remaining = timer.time_remaining("train") if timer is not None else None
        if timer is None or remaining is None or self._train_images == 0:
            return
        per_image = self._train_s / self._train_images
        need = validation_estimate(self.val_images, per_image, self.last_val_s)
        # every rank decides together (as Lightning's Timer does), so DDP ranks stop in step
        if not trainer.strategy.reduce_boolean_decision(remaining <= need, all=False):
            return
        budget = timer.time_elapsed("train") + remaining
        if self.last_val_s is None and self._warm_images:
            # the warm speed, when there is one: a slow first batch must not cancel validation
            need = validation_estimate(self.val_images, self._warm_s / self._warm_images, None)
        overrun = need - remaining > allowed_overrun(budget)
        overrun = trainer.strategy.reduce_boolean_decision(overrun, all=False)
        if overrun and self.last_val_s is None and not self._warm_images:
            return  # one more batch, for a warm speed before deciding to skip validation
        trainer.should_stop = True  # Lightning validates this partial epoch, then ends
        epochs = trainer.max_epochs
        last_epoch = epochs is not None and epochs >= 0 and trainer.current_epoch + 1 >= epochs
        self.cut_short = i + 1 < trainer.num_training_batches or not last_epoch
        if overrun:
            self._skip_validation(trainer, need, budget)

    def _skip_validation(self, trainer: L.Trainer, need: float, budget: float) -> None:
        from cnnlab import console
        from cnnlab.engine.trainer import RunCheckpoint

        self.skipped_validation = True
        trainer.limit_val_batches = 0  # Trainer.enable_validation reads it: no pass this epoch
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.save_unvalidated_epoch()
        if trainer.is_global_zero:
            console.warn(
                f"train.max_time={budget:.0f}s is shorter than one validation pass (~{need:.0f}s"
                " here): the last, partial epoch is not validated, so the budget holds; the"
                " final evaluation of val and test follows"
            )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.last_val_s = time.perf_counter() - self._val_start
