"""Per-epoch loss, accuracy and macro F1, tallied on the device inside the steps.

Logging each step through ``self.log`` and torchmetrics objects cost ~2 ms a step here
(bench/bench_steplog.py), more than a small model's own step. A tally instead keeps running
sums on the batch's device: a few in-place tensor ops per step and no host sync. The epoch
values are computed once, from sums reduced over every process, and equal what Lightning's
batch-weighted mean (``loss``, ``lr``), torchmetrics' ``MulticlassAccuracy(average="micro")``
and ``MulticlassF1Score(average="macro")`` gave: tests/engine/test_epoch_metrics.py checks
that against the real ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


class EpochTally:
    """Running sums for one stage's epoch: loss x batch, lr x batch, and a confusion matrix.

    Args:
        num_classes: number of classes (the confusion matrix is ``num_classes`` squared).
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.loss_sum: Tensor | None = None  # float32, as Lightning accumulated a logged mean
        self.confmat: Tensor | None = None  # int64 (C * C,): row = target, column = prediction
        self.lr_sum = np.float32(0.0)  # on the host: the lr is a Python float, never a tensor

    @property
    def empty(self) -> bool:
        return self.loss_sum is None

    def reset(self) -> None:
        self.loss_sum, self.confmat, self.lr_sum = None, None, np.float32(0.0)

    def update(self, loss: Tensor, logits: Tensor, y: Tensor, lr: float | None = None) -> None:
        """Add one batch: its mean ``loss``, ``logits`` (B, C) and hard labels ``y`` (B,)."""
        batch = y.shape[0]
        if self.loss_sum is None or self.confmat is None:
            self.loss_sum = torch.zeros((), dtype=torch.float32, device=logits.device)
            self.confmat = torch.zeros(self.num_classes**2, dtype=torch.int64, device=logits.device)
        # loss * batch rounded to float32, then added: Lightning's own order and rounding
        self.loss_sum.add_(loss.detach().float() * batch)
        cells = y.long() * self.num_classes + logits.detach().argmax(dim=1)
        # index_add_, not bincount: bincount reads the largest index back to the host (a GPU sync)
        self.confmat.index_add_(0, cells, torch.ones_like(cells))
        if lr is not None:
            self.lr_sum += np.float32(lr) * batch  # float32 arithmetic, as the logged lr had

    def totals(self) -> tuple[Tensor, Tensor]:
        """``([loss_sum, lr_sum], confmat)``: what to sum over processes before :func:`values`."""
        assert self.loss_sum is not None and self.confmat is not None, "no batch was tallied"
        lr = torch.tensor(self.lr_sum, dtype=torch.float32, device=self.loss_sum.device)
        return torch.stack([self.loss_sum, lr]), self.confmat.clone()


def accuracy(confmat: Tensor) -> Tensor:
    """Micro accuracy from a (C, C) confusion matrix: torchmetrics' ``tp / (tp + fn)``."""
    return _safe_divide(confmat.diagonal().sum(), confmat.sum())


def macro_f1(confmat: Tensor) -> Tensor:
    """Macro F1 from a (C, C) confusion matrix, as torchmetrics computes it.

    A class absent from both targets and predictions (no tp, fp or fn) is left out of the
    mean rather than counted as 0 (torchmetrics' ``_adjust_weights_safe_divide``); each
    class's share is divided before the sum, in that order, so the float32 result is its.
    """
    tp = confmat.diagonal()
    fp, fn = confmat.sum(0) - tp, confmat.sum(1) - tp
    f1 = _safe_divide(2.0 * tp, 2.0 * tp + 1.0 * fn + fp)
    weights = torch.ones_like(f1)
    weights[tp + fp + fn == 0] = 0.0
    return _safe_divide(weights * f1, weights.sum(-1, keepdim=True)).sum(-1)


def _safe_divide(num: Tensor, denom: Tensor) -> Tensor:
    """``num / denom`` in float, 0 where ``denom`` is 0 (torchmetrics' ``_safe_divide``)."""
    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / denom, torch.zeros((), dtype=num.dtype, device=num.device))


def epoch_values(
    sums: Tensor, confmat: Tensor, reduce: Callable[[Tensor], Tensor] | None = None
) -> dict[str, Tensor]:
    """``loss``, ``accuracy``, ``macro_f1`` and ``lr`` (both means weighted by batch size).

    Args:
        sums: ``[loss_sum, lr_sum]`` from :meth:`EpochTally.totals`.
        confmat: the flat confusion matrix from :meth:`EpochTally.totals`.
        reduce: sums a tensor over processes (DDP); ``None`` on one process.
    """
    if reduce is not None:
        sums, confmat = reduce(sums), reduce(confmat)
    classes = round(confmat.numel() ** 0.5)
    matrix = confmat.view(classes, classes)
    count = confmat.sum()  # the number of samples: Lightning's summed batch sizes
    return {
        "loss": sums[0] / count,
        "accuracy": accuracy(matrix),
        "macro_f1": macro_f1(matrix),
        "lr": sums[1] / count,
    }
