"""cnnlab's own CNNs: the classic course architectures and a configurable ``cnn``.

Every builder returns a :class:`ConvBackbone` (image -> pooled features ``(B, F)``); the
registry adds the classifier head. Dense hidden layers (LeNet's dense-50, AlexNet's 4096s)
belong to the backbone's ``neck`` so the head stays the final classifier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ModelError
from cnnlab.models.heads import create_activation


class ConvBackbone(nn.Module):
    """``neck(blocks(x))``: a stack of conv blocks (the stages) and a pooling/dense neck."""

    def __init__(self, blocks: Sequence[nn.Module], neck: nn.Module, num_features: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.neck = neck
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.neck(x)

    def stage_modules(self) -> list[nn.Module]:
        """Stages for ``partial:N``, deepest last; a neck with weights counts as one."""
        has_weights = any(True for _ in self.neck.parameters())
        return [*self.blocks, *([self.neck] if has_weights else [])]


def _feature_map(blocks: Sequence[nn.Module], in_chans: int, img_size: int) -> tuple[int, int]:
    """(channels, side) of the last block's output for an ``img_size`` input, by a dry run."""
    body = nn.Sequential(*blocks)
    was_training = body.training
    body.eval()  # batch norm refuses a batch of one 1x1 map in training mode
    try:
        with torch.no_grad():
            out = body(torch.zeros(1, in_chans, img_size, img_size))
    except RuntimeError as exc:
        raise ModelError(
            f"img_size {img_size} px is too small for {len(blocks)} down-sampling blocks "
            f"({str(exc).splitlines()[0]}); use a larger data.img_size or fewer blocks"
        ) from None
    finally:
        body.train(was_training)
    return int(out.shape[1]), int(out.shape[-1])


def _neck(
    channels: int,
    side: int,
    pool: str,
    hidden: int = 0,
    activation: str = "relu",
    hidden_bn: bool = False,
) -> tuple[nn.Module, int]:
    """Pooling (avg | max | flatten) plus an optional dense hidden layer -> (neck, width)."""
    if pool == "avg":
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        width = channels
    elif pool == "max":
        layers, width = [nn.AdaptiveMaxPool2d(1), nn.Flatten()], channels
    elif pool == "flatten":
        # Identity at the img_size the model was built for; other sizes are pooled to the
        # same map so one set of weights still fits.
        layers, width = [nn.AdaptiveAvgPool2d(side), nn.Flatten()], channels * side * side
    else:
        raise ModelError(f"unknown global_pool '{pool}'; valid: avg, max, flatten")
    if hidden > 0:
        layers.append(nn.Linear(width, hidden))
        if hidden_bn:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(create_activation(activation))
        width = hidden
    return nn.Sequential(*layers), width


def _conv(
    cin: int, cout: int, k: int, bn: bool, act: str, pad: int | None = None
) -> list[nn.Module]:
    pad = k // 2 if pad is None else pad
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(create_activation(act))
    return layers


def _finish(
    blocks: list[nn.Module],
    in_chans: int,
    img_size: int,
    pool: str,
    hidden: int = 0,
    activation: str = "relu",
    hidden_bn: bool = False,
) -> ConvBackbone:
    channels, side = _feature_map(blocks, in_chans, img_size)
    neck, width = _neck(channels, side, pool, hidden, activation, hidden_bn)
    return ConvBackbone(blocks, neck, width)


def vanilla_cnn(in_chans: int, img_size: int) -> ConvBackbone:
    """Three conv -> ReLU -> max-pool blocks (32, 64, 64 filters), flattened: the textbook CNN."""
    blocks, cin = [], in_chans
    for cout in (32, 64, 64):
        blocks.append(nn.Sequential(*_conv(cin, cout, 3, False, "relu"), nn.MaxPool2d(2)))
        cin = cout
    return _finish(blocks, in_chans, img_size, "flatten")


def basenet(in_chans: int, img_size: int) -> ConvBackbone:
    """LeNet-style: conv5x5x6, pool, conv5x5x16, pool, dense 50 (the head adds dense K)."""
    blocks = [
        nn.Sequential(*_conv(in_chans, 6, 5, False, "relu", pad=0), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(6, 16, 5, False, "relu", pad=0), nn.MaxPool2d(2)),
    ]
    return _finish(blocks, in_chans, img_size, "flatten", hidden=50)


def basenet_plus(in_chans: int, img_size: int) -> ConvBackbone:
    """BaseNet with pairs of 3x3 BN convs, max-pool and dropout, a final conv, dense 50 + BN."""
    blocks, cin = [], in_chans
    for cout in (32, 64):
        pair = _conv(cin, cout, 3, True, "relu") + _conv(cout, cout, 3, True, "relu")
        blocks.append(nn.Sequential(*pair, nn.MaxPool2d(2), nn.Dropout(0.25)))
        cin = cout
    blocks.append(nn.Sequential(*_conv(cin, 128, 3, True, "relu"), nn.MaxPool2d(2)))
    return _finish(blocks, in_chans, img_size, "flatten", hidden=50, hidden_bn=True)


def tiny_cnn(in_chans: int, img_size: int) -> ConvBackbone:
    """About six thousand weights (8, 16, 32 BN convs): for tests, demos and very small data."""
    blocks = [
        nn.Sequential(*_conv(in_chans, 8, 3, True, "relu"), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(8, 16, 3, True, "relu"), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(16, 32, 3, True, "relu")),
    ]
    return _finish(blocks, in_chans, img_size, "avg")


def _kernel_sizes(spec: Any) -> list[int]:
    sizes = spec.kernel_size
    if isinstance(sizes, int):
        return [sizes] * len(spec.filters)
    if len(sizes) != len(spec.filters):
        raise ModelError(
            f"model.cnn.kernel_size has {len(sizes)} entries but model.cnn.filters has "
            f"{len(spec.filters)}; give one kernel size per block or a single number"
        )
    return list(sizes)


def cnn(in_chans: int, img_size: int, spec: Any = None) -> ConvBackbone:
    """A CNN built from a :class:`cnnlab.config.CNNSpec` (or a dict of its fields).

    Each block is ``convs_per_block`` x (conv, [batch norm], activation), then a 2x2
    max/avg pool and optional dropout. The defaults (32-64-128 filters, two 3x3 BN-ReLU convs
    per block, global average pool, ~0.29M weights, ~39M MACs at 32 px) are the project's
    fast 32-px learner: on the 10-class 32-px benchmark set they reached 0.978 test accuracy in
    10 epochs against 0.985 for 64-128-256, at a quarter of the compute (bench/RESULTS.md).
    """
    from cnnlab.config import CNNSpec

    spec = CNNSpec.model_validate(spec or {}) if not isinstance(spec, CNNSpec) else spec
    if not spec.filters or min(spec.filters) < 1:
        raise ModelError(f"model.cnn.filters must list positive filter counts, got {spec.filters}")
    pool_cls = nn.MaxPool2d if spec.pooling == "max" else nn.AvgPool2d
    blocks: list[nn.Module] = []
    cin = in_chans
    for cout, k in zip(spec.filters, _kernel_sizes(spec), strict=True):
        layers: list[nn.Module] = []
        for i in range(spec.convs_per_block):
            layers += _conv(cin if i == 0 else cout, cout, k, spec.batch_norm, spec.activation)
        layers.append(pool_cls(2))
        if spec.dropout > 0:
            layers.append(nn.Dropout(spec.dropout))
        blocks.append(nn.Sequential(*layers))
        cin = cout
    return _finish(blocks, in_chans, img_size, spec.global_pool, spec.hidden_units, spec.activation)


def alexnet(in_chans: int, img_size: int) -> ConvBackbone:
    """torchvision's AlexNet (random init): five conv stages and the two 4096 dense layers."""
    from torchvision.models import alexnet as tv_alexnet

    net = tv_alexnet(weights=None)
    feats = net.features
    if in_chans != 3:
        feats[0] = nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2)
    blocks = [feats[0:3], feats[3:6], feats[6:8], feats[8:10], feats[10:13]]
    _feature_map(blocks, in_chans, img_size)  # fails early (ModelError) below ~63 px
    neck = nn.Sequential(net.avgpool, nn.Flatten(), *net.classifier[:-1])
    return ConvBackbone(blocks, neck, net.classifier[-1].in_features)


BUILDERS: dict[str, Callable[..., ConvBackbone]] = {
    "cnn": cnn,
    "vanilla_cnn": vanilla_cnn,
    "basenet": basenet,
    "basenet_plus": basenet_plus,
    "tiny_cnn": tiny_cnn,
    "alexnet": alexnet,
}
