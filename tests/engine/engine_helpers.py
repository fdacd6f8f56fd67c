"""Tiny models and separable uint8 data for the engine tests (imported by name, so unique)."""

from __future__ import annotations

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
