"""The one network type every cnnlab model is: a backbone, a head and their metadata."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Classifier(nn.Module):
    """``head(backbone(x))`` plus what training, transfer modes and the model card need.

    Attributes:
        backbone: image ``(B, C, H, W)`` -> pooled features ``(B, num_features)``.
        head: features -> logits ``(B, num_classes)``; its last layer is ``head.fc``.
        stages: backbone stages, deepest last (``partial:N`` trains the last N). A plain list:
            the modules are registered under ``backbone`` only, so the state dict has no
            duplicate keys.
        mode: the transfer mode last applied (``cnnlab.models.transfer.apply_mode``).
        frozen_modules: backbone modules kept in eval mode even under ``.train()``, so a frozen
            backbone's batch-norm statistics and dropout never change.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        num_features: int,
        stages: Sequence[nn.Module],
        *,
        name: str,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        default_img_size: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_features = num_features
        self.stages: list[nn.Module] = list(stages)
        self.name = name
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.default_img_size = default_img_size
        self.mode = "scratch"
        self.weights_source: str | None = None
        self.frozen_modules: list[nn.Module] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def train(self, mode: bool = True) -> Classifier:
        """Switch train/eval mode, keeping frozen backbone modules in eval mode."""
        super().train(mode)
        for module in self.frozen_modules:
            module.training = False
        return self


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _top_level(members: list[tuple[str, nn.Module]]) -> list[nn.Module]:
    """Drop members whose parent is also a member (their parameters come with the parent)."""
    names = {n for n, _ in members}
    return [m for n, m in members if (n.rsplit(".", 1)[0] if "." in n else "") not in names]


def timm_stages(model: nn.Module) -> list[nn.Module]:
    """Cut a timm model into contiguous stages at its ``feature_info`` boundaries.

    Modules are taken in registration (pre-order) order, which follows the forward pass for
    CNNs. Everything after the last boundary (final conv, pre-logits) joins the last stage,
    the stem joins the first; stages without weights are dropped.
    """
    named = list(model.named_modules())
    infos = getattr(model, "feature_info", None) or []
    bounds = [i.get("module") for i in infos if isinstance(i, dict)]
    pos = {n: k for k, (n, _) in enumerate(named)}
    bounds = [b for b in bounds if b in pos]
    if not bounds:  # no feature_info: each top-level child with weights is a stage
        return [m for _, m in model.named_children() if _has_params(m)]
    ends = sorted(
        {
            max(k for k, (n, _) in enumerate(named) if n == b or n.startswith(b + "."))
            for b in bounds
        }
    )
    ancestors = {""} | {b.rsplit(".", j)[0] for b in bounds for j in range(1, b.count(".") + 1)}
    stages: list[nn.Module] = []
    start = 0
    for idx, end in enumerate(ends):
        stop = len(named) - 1 if idx == len(ends) - 1 else end
        members = [(n, m) for n, m in named[start : stop + 1] if n not in ancestors]
        stage = nn.ModuleList(_top_level(members))
        if _has_params(stage):
            stages.append(stage)
        start = stop + 1
    return stages
