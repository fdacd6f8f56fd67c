"""The LightningModule that trains any classifier: images or cached features in, logits out.

The module never asks which model it runs. Data arrives as uint8 image batches (or float
feature batches for heads on frozen features); augmentation and normalisation happen here, on
whatever device the batch was moved to, so the same code is fast on a CPU and on a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from cnnlab.config import TrainConfig
from cnnlab.data.transforms import mix_batch
from cnnlab.engine.epoch_metrics import EpochTally, epoch_values
from cnnlab.engine.optim import create_optimizer, create_scheduler, default_lr
from cnnlab.models.transfer import no_decay_groups


class ClassifierModule(L.LightningModule):
    """Train, validate, test and predict with a classifier.

    Args:
        model: an ``nn.Module`` mapping a batch to logits ``(B, num_classes)``.
        num_classes: number of classes.
        train: the training section of the config (``train.lr`` already resolved).
        steps_per_epoch: optimizer steps per epoch, used when no Trainer is attached.
        loss: the training loss (``losses.create_loss``); validation uses the same one.
        train_transform: uint8 batch -> augmented, normalised float batch (training).
        eval_transform: uint8 batch -> normalised float batch (val, test, predict).
        param_groups: optimizer groups (per-group lr / weight decay); default: all trainable
            parameters, without weight decay on biases and norms.
        mixup: mixup alpha (0 = off).
        cutmix: cutmix alpha (0 = off).
        channels_last: run convolutions in NHWC memory format.

    Example:
        >>> module = ClassifierModule(net, 10, cfg.train, 50, create_loss())  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        train: TrainConfig,
        steps_per_epoch: int,
        loss: nn.Module,
        train_transform: nn.Module | None = None,
        eval_transform: nn.Module | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.num_classes = num_classes
        self.cfg = train  # kept out of checkpoints on purpose: see engine.checkpoint
        self.steps_per_epoch = steps_per_epoch
        self.loss_fn = loss
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.param_groups = param_groups
        self.mixup, self.cutmix = mixup, cutmix
        self.channels_last = channels_last
        # per-epoch sums, logged once per epoch (engine.epoch_metrics says why not per step)
        self.tallies = {stage: EpochTally(num_classes) for stage in ("train", "val", "test")}

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _prepare(self, x: Tensor, training: bool) -> Tensor:
        transform = self.train_transform if training else self.eval_transform
        if transform is not None:
            x = transform(x)
        elif not x.is_floating_point():
            x = x.float() / 255.0
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        training = self.trainer.training if self._trainer is not None else self.training
        if isinstance(batch, Tensor):
            return self._prepare(batch, training)
        x, *rest = batch
        return (self._prepare(x, training), *rest)

    def _l1_penalty(self) -> Tensor:
        weights = [p.abs().sum() for p in self.model.parameters() if p.requires_grad and p.ndim > 1]
        return torch.stack(weights).sum() if weights else torch.zeros((), device=self.device)

    def log_epoch_metrics(self, stage: str) -> None:
        """Log ``stage``'s epoch values from its tally, summed over processes, then clear it.

        Called at the stage's epoch end; a second call in the same epoch does nothing. For
        ``train`` the engine's first callback calls it (``callbacks.LogTrainEpoch``), because
        Lightning runs callbacks' ``on_train_epoch_end`` before the module's and metrics.csv
        and the progress line read the values there.
        """
        tally = self.tallies[stage]
        if tally.empty:
            return
        sums, confmat = tally.totals()
        tally.reset()
        values = epoch_values(sums, confmat, self._sum_over_processes)
        if stage != "train":
            del values["lr"]
        for name, value in values.items():
            # equal on every process already: max-syncing equal values returns them exactly,
            # and a synced value keeps Lightning from warning about unsynced epoch metrics
            key = name if name == "lr" else f"{stage}/{name}"
            self.log(key, value, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")

    def _sum_over_processes(self, tensor: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(tensor, reduce_op="sum")

    def on_train_epoch_start(self) -> None:
        self.tallies["train"].reset()

    def on_validation_epoch_start(self) -> None:
        self.tallies["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.tallies["test"].reset()

    def on_train_epoch_end(self) -> None:
        self.log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_metrics("test")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        target: Tensor = y
        if (self.mixup > 0 or self.cutmix > 0) and y.ndim == 1:
            x, target = mix_batch(x, y, self.num_classes, self.mixup, self.cutmix)
        logits = self(x)
        loss = self.loss_fn(logits, target)
        if self.cfg.l1 > 0:
            loss = loss + self.cfg.l1 * self._l1_penalty()
        lr = max(group["lr"] for group in self.optimizers().param_groups)
        self.tallies["train"].update(loss, logits, y, lr)  # accuracy: against the hard labels
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        logits = self(x)
        self.tallies["val"].update(self.loss_fn(logits, y), logits, y)

    def test_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        logits = self(x)
        self.tallies["test"].update(self.loss_fn(logits, y), logits, y)
        return torch.softmax(logits.float(), dim=1)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        x = batch if isinstance(batch, Tensor) else batch[0]
        return torch.softmax(self(x).float(), dim=1)

    def _schedule_shape(self) -> tuple[int, int]:
        """(epochs, steps per epoch) as the attached Trainer will really run them."""
        if self._trainer is None:
            return self.cfg.epochs, self.steps_per_epoch
        epochs = self.trainer.max_epochs or self.cfg.epochs
        if epochs < 0:
            return self.cfg.epochs, self.steps_per_epoch
        total = int(self.trainer.estimated_stepping_batches)
        return epochs, max(1, math.ceil(total / epochs))

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """The parameter groups given, else every trainable one split into decay / no-decay."""
        if self.param_groups:
            return self.param_groups
        return no_decay_groups(self.model.named_parameters(), self.cfg.weight_decay)

    def configure_optimizers(self) -> Any:
        cfg = self.cfg
        lr = cfg.lr if cfg.lr is not None else default_lr(cfg.optimizer)
        groups = self.optimizer_groups()
        optimizer = create_optimizer(
            groups, cfg.optimizer, lr, cfg.momentum, cfg.nesterov, cfg.weight_decay
        )
        epochs, steps = self._schedule_shape()
        schedule = create_scheduler(
            optimizer,
            cfg.scheduler,
            epochs,
            steps,
            warmup_epochs=cfg.warmup_epochs,
            step_size=cfg.step_size,
            milestones=cfg.milestones,
            gamma=cfg.gamma,
            plateau_patience=cfg.plateau_patience,
            monitor=cfg.monitor,
        )
        if schedule is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": schedule}
