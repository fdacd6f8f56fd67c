"""Classifier heads that sit on a backbone's pooled features.

The head is kept separate from the backbone so that frozen-feature training, scikit-learn
probes and fine-tuning can all swap or retrain it without touching the feature extractor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.errors import ModelError

ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh")
HEADS = ("linear", "mlp", "logreg", "svm")


def create_activation(name: str) -> nn.Module:
    """A fresh activation module by its config name (``relu``, ``gelu``...)."""
    makers = {
        "relu": lambda: nn.ReLU(inplace=True),
        "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
        "elu": lambda: nn.ELU(inplace=True),
        "gelu": nn.GELU,
        "silu": lambda: nn.SiLU(inplace=True),
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
    }
    if name not in makers:
        raise ModelError(f"unknown activation '{name}'; valid: {', '.join(ACTIVATIONS)}")
    return makers[name]()


class Head(nn.Module):
    """``fc(drop(hidden(x)))``: a linear classifier after optional hidden layers.

    ``fc`` is always the final ``nn.Linear`` so scikit-learn probes can write into it.
    """

    def __init__(
        self, hidden: nn.Module, hidden_features: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(hidden_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.hidden(x)))


def hidden_layers(hidden: int | Sequence[int]) -> list[int]:
    """The hidden widths of an ``mlp`` head: ``256`` -> ``[256]``, ``[512, 256]`` as given,
    ``0`` or ``[]`` -> ``[]`` (no hidden layer: a linear head)."""
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        widths: Sequence[object] = [hidden] if hidden else []
    elif isinstance(hidden, Sequence) and not isinstance(hidden, str):
        widths = hidden
    else:
        raise ModelError(f"head_hidden must be a number of units or a list of them, got {hidden!r}")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ModelError(
            f"head_hidden {hidden!r}: every hidden layer needs a positive whole number of units"
        )
    return [int(w) for w in widths]  # type: ignore[call-overload]


def _mlp(num_features: int, widths: list[int], activation: str, dropout: float) -> nn.Module:
    """Linear + activation per hidden layer, with the head's dropout between hidden layers.

    The first layer is ``hidden.0`` whatever the depth, so a one-layer head keeps the layout
    (and state-dict keys) runs saved before deeper heads existed.
    """
    layers: list[nn.Module] = []
    width = num_features
    for i, units in enumerate(widths):
        if i:  # the last hidden layer's dropout is Head.drop, right before fc
            layers.append(nn.Dropout(dropout) if dropout > 0 else nn.Identity())
        layers += [nn.Linear(width, units), create_activation(activation)]
        width = units
    return nn.Sequential(*layers)


def create_head(
    kind: str,
    num_features: int,
    num_classes: int,
    hidden: int | Sequence[int] = 256,
    activation: str = "relu",
    dropout: float = 0.0,
) -> Head:
    """Build a head by name.

    Args:
        kind: ``linear`` or ``mlp``; ``logreg`` and ``svm`` build a linear head that a
            scikit-learn model fills in later (``engine.features.fit_sklearn_head``).
        num_features: width of the backbone's pooled features.
        num_classes: number of output logits.
        hidden: hidden units of the ``mlp`` head: one number (one hidden layer), a list (one
            layer per entry, e.g. ``[512, 256]``), or 0 / ``[]`` (none: a linear head).
        activation: activation after every hidden layer of the ``mlp`` head.
        dropout: dropout after every hidden layer (before the final linear layer when there
            is none).

    Example:
        >>> create_head("mlp", 64, 3, hidden=[32, 16], dropout=0.5).fc.in_features
        16
    """
    if kind not in HEADS:
        raise ModelError(f"unknown head '{kind}'; valid: {', '.join(HEADS)}")
    if num_classes < 1:
        raise ModelError(f"a head needs at least one class, got num_classes={num_classes}")
    widths = hidden_layers(hidden) if kind == "mlp" else []
    if widths:
        layers = _mlp(num_features, widths, activation, dropout)
        return Head(layers, widths[-1], num_classes, dropout)
    return Head(nn.Identity(), num_features, num_classes, dropout)
