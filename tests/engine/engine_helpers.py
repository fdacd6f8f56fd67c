"""Tiny models and separable uint8 data for the engine tests (imported by name, so unique)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.config import TrainConfig
from cnnlab.engine.losses import create_loss
from cnnlab.engine.module import ClassifierModule


class Normalise(nn.Module):
    """uint8 batch -> float in [-1, 1] (what the real eval transform does, minus crops)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 127.5 - 1.0


def tiny_net(num_classes: int = 3, channels: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


def separable_images(n: int, num_classes: int = 3, size: int = 8, seed: int = 0):
    """uint8 images whose class is the brightest colour channel: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % num_classes
    images = torch.randint(0, 80, (n, 3, size, size), generator=g, dtype=torch.uint8)
    for c in range(num_classes):
        images[labels == c, c % 3] += 150
    return images, labels


def loader(images, labels, batch_size: int = 16, shuffle: bool = False, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(images, labels), batch_size=batch_size, shuffle=shuffle, generator=g
    )


def make_module(train: TrainConfig, steps: int, num_classes: int = 3, **kwargs) -> ClassifierModule:
    return ClassifierModule(
        tiny_net(num_classes),
        num_classes,
        train,
        steps,
        create_loss("ce", train.label_smoothing),
        train_transform=Normalise(),
        eval_transform=Normalise(),
        **kwargs,
    )


STAGE_KEYS = {
    "train": ("train/loss", "train/accuracy", "train/macro_f1", "lr"),
    "val": ("val/loss", "val/accuracy", "val/macro_f1"),
}


class OldLoggingModule(ClassifierModule):
    """ClassifierModule that also logs every step the way cnnlab did before the epoch tallies
    (``self.log`` of the loss and lr, torchmetrics objects), under ``old/``: the same run then
    carries both, computed from the same predictions, for :class:`CompareOldLogging`."""

    def __init__(self, *args, **kwargs) -> None:
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

        super().__init__(*args, **kwargs)
        self.old = nn.ModuleDict(
            {
                f"{stage}_{name}": metric(num_classes=self.num_classes, average=avg)
                for stage in ("train", "val")
                for name, metric, avg in (
                    ("accuracy", MulticlassAccuracy, "micro"),
                    ("macro_f1", MulticlassF1Score, "macro"),
                )
            }
        )
        self.logits: torch.Tensor | None = None
        self.model.register_forward_hook(self._keep_logits)

    def _keep_logits(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self.logits = output

    def _old_log(self, stage: str, loss: torch.Tensor, y: torch.Tensor) -> None:
        batch = y.shape[0]
        self.log(
            f"old/{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True,
            batch_size=batch,
        )  # fmt: skip
        for name in ("accuracy", "macro_f1"):
            metric = self.old[f"{stage}_{name}"]
            metric.update(self.logits.detach(), y)
            self.log(f"old/{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=batch)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        self._old_log("train", loss, batch[1])
        lr = max(group["lr"] for group in self.optimizers().param_groups)
        self.log(
            "old/lr", lr, on_step=False, on_epoch=True, batch_size=batch[1].shape[0],
            sync_dist=True,
        )  # fmt: skip
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self._old_log("val", self.loss_fn(self.logits, batch[1]), batch[1])


class CompareOldLogging(L.Callback):
    """After every other callback: each epoch value must equal the old path's, bit for bit.

    Keeps the old values per epoch (``history``) and how many epochs it compared; a mismatch
    raises, which also fails a DDP subprocess run.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.checked = {"train": 0, "val": 0}

    def _compare(self, trainer: L.Trainer, stage: str) -> dict[str, float]:
        metrics = trainer.callback_metrics
        old = {}
        for key in STAGE_KEYS[stage]:
            new, before = metrics[key], metrics[f"old/{key}"]
            assert torch.equal(new, before), f"{key}: {new.item()!r} != old {before.item()!r}"
            old[key] = before.item()
        self.checked[stage] += 1
        return old

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.history.append(self._compare(trainer, "val"))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.history[-1].update(self._compare(trainer, "train"))
