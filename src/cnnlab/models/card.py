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


def count_macs(model: nn.Module, img_size: int, in_chans: int) -> int:
    """Multiply-accumulates of one forward pass on one ``img_size`` image.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) in eval mode on the
    model's own device and dtype; the model's train/eval state is restored afterwards.
    """
    from torch.utils.flop_counter import FlopCounterMode

    ref = next(model.parameters(), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_chans, img_size, img_size, device=device, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)


def describe_model(model: nn.Module, img_size: int, in_chans: int) -> dict[str, Any]:
    """``{"params": {"total", "trainable"}, "macs": int}`` for ``model.json``.

    Example:
        >>> describe_model(create_model("tiny_cnn", 3), 32, 3)["params"]["total"]  # doctest: +SKIP
        6187
    """
    return {"params": count_params(model), "macs": count_macs(model, img_size, in_chans)}
