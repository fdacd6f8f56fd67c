"""Classification losses that accept hard labels and soft (mixup / cutmix) targets alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import ConfigError

LOSSES = ("ce", "focal")


def _soft_targets(target: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """Integer labels or (B, K) probabilities -> smoothed (B, K) probabilities."""
    if target.ndim == 1:
        target = F.one_hot(target.long(), num_classes).float()
    target = target.float()
    if smoothing > 0:
        target = target * (1.0 - smoothing) + smoothing / num_classes
    return target


class SoftCrossEntropy(nn.Module):
    """Cross entropy with label smoothing and class weights, for hard or soft targets.

    torch's ``cross_entropy`` normalises a weighted mean by the summed weights of the *hard*
    labels, which has no meaning for soft targets; here every sample's loss is weighted by its
    target's expected class weight and the batch mean is divided by the summed sample
    weights, which reduces to torch's definition for hard labels.
    """

    def __init__(self, label_smoothing: float = 0.0, class_weights: Tensor | None = None) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        onehot = _soft_targets(target, logits.shape[1], 0.0)
        soft = _soft_targets(target, logits.shape[1], self.label_smoothing)
        if self.class_weights is None:
            return -(soft * logp).sum(dim=1).mean()
        w = self.class_weights.to(logp)
        per_class = -(soft * logp) * w  # weight each class's term, as torch does
        sample_w = (onehot * w).sum(dim=1)
        return per_class.sum(dim=1).sum() / sample_w.sum()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-sum_k t_k (1 - p_k)^gamma log p_k``.

    Down-weights easy, confident samples so rare hard classes get more of the gradient;
    ``gamma=0`` is plain cross entropy.
    """

    def __init__(
        self, gamma: float = 2.0, label_smoothing: float = 0.0, class_weights: Tensor | None = None
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        soft = _soft_targets(target, logits.shape[1], self.label_smoothing)
        terms = -soft * (1.0 - logp.exp()).pow(self.gamma) * logp
        if self.class_weights is not None:
            terms = terms * self.class_weights.to(logp)
        return terms.sum(dim=1).mean()


def create_loss(
    kind: str = "ce",
    label_smoothing: float = 0.0,
    class_weights: Tensor | Sequence[float] | None = None,
    focal_gamma: float = 2.0,
) -> nn.Module:
    """Build the training loss by name (``ce`` or ``focal``).

    Example:
        >>> loss = create_loss("ce", label_smoothing=0.1)
        >>> float(loss(torch.zeros(2, 3), torch.tensor([0, 2]))) > 0
        True
    """
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float)
    if kind == "ce":
        return SoftCrossEntropy(label_smoothing, weights)
    if kind == "focal":
        return FocalLoss(focal_gamma, label_smoothing, weights)
    raise ConfigError(f"unknown loss '{kind}'; valid: {', '.join(LOSSES)}")


def inverse_frequency_weights(labels: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Class weights ``N / (K * count_k)`` (mean 1 over samples); absent classes get 0.

    Balanced data gives all ones, so switching weights on changes nothing there.
    """
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=num_classes)
    counts = counts[:num_classes].float()
    total = counts.sum()
    weights = torch.where(counts > 0, total / (num_classes * counts.clamp(min=1)), 0.0)
    return weights
