"""Size facts for the model card: parameter counts and multiply-accumulates per image."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_params(model: nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts (shared tensors counted once)."""
    params = list(model.parameters())  # .parameters() already de-duplicates shared tensors
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


# Backbone MACs counted in this process, by (architecture, input): a tune's or a study's
# runs share a backbone and differ in the head, and counting EfficientNet-Lite0 at 224 px
# takes ~0.25 s. The key is the backbone's repr (every layer with its shapes and options).
_BACKBONE_MACS: dict[tuple[Any, ...], tuple[int, torch.Size]] = {}
_BACKBONE_MACS_MAX = 8


def _counted(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """MACs of ``module(x)`` (FLOPs / 2) and its output."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = module(x)
    return int(counter.get_total_flops() // 2), out


def count_macs(model: nn.Module, img_size: int, in_chans: int) -> int:
    """Multiply-accumulates of one forward pass on one ``img_size`` image.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) in eval mode on the
    model's own device and dtype; the model's train/eval state is restored afterwards. For a
    :class:`~cnnlab.models.classifier.Classifier` the backbone's count is remembered for the
    process (the head is counted each time): the same total as counting the whole network.
    """
    from cnnlab.models.classifier import Classifier

    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_chans, img_size, img_size, device=device, dtype=dtype)
        if not isinstance(model, Classifier):
            return _counted(model, x)[0]
        key = (repr(model.backbone), img_size, in_chans, str(device), dtype)
        if key not in _BACKBONE_MACS:
            macs, feats = _counted(model.backbone, x)
            _BACKBONE_MACS[key] = (macs, feats.shape)
            while len(_BACKBONE_MACS) > _BACKBONE_MACS_MAX:
                del _BACKBONE_MACS[next(iter(_BACKBONE_MACS))]
        macs, shape = _BACKBONE_MACS[key]
        return macs + _counted(model.head, torch.zeros(shape, device=device, dtype=dtype))[0]
    finally:
        model.train(was_training)


def describe_model(model: nn.Module, img_size: int, in_chans: int) -> dict[str, Any]:
    """``{"params": {"total", "trainable"}, "macs": int}`` for ``model.json``.

    Example:
        >>> describe_model(create_model("tiny_cnn", 3), 32, 3)["params"]["total"]  # doctest: +SKIP
        6187
    """
    return {"params": count_params(model), "macs": count_macs(model, img_size, in_chans)}
