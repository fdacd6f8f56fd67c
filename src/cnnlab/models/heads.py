"""Classifier heads that sit on a backbone's pooled features.

The head is kept separate from the backbone so that frozen-feature training, scikit-learn
probes and fine-tuning can all swap or retrain it without touching the feature extractor.
"""

from __future__ import annotations

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
    """``fc(drop(hidden(x)))``: a linear classifier with an optional hidden layer.

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


def create_head(
    kind: str,
    num_features: int,
    num_classes: int,
    hidden: int = 256,
    activation: str = "relu",
    dropout: float = 0.0,
) -> Head:
    """Build a head by name.

    Args:
        kind: ``linear`` or ``mlp``; ``logreg`` and ``svm`` build a linear head that a
            scikit-learn model fills in later (``engine.features.fit_sklearn_head``).
        num_features: width of the backbone's pooled features.
        num_classes: number of output logits.
        hidden: hidden units of the ``mlp`` head.
        activation: activation of the ``mlp`` hidden layer.
        dropout: dropout before the final linear layer.
    """
    if kind not in HEADS:
        raise ModelError(f"unknown head '{kind}'; valid: {', '.join(HEADS)}")
    if num_classes < 1:
        raise ModelError(f"a head needs at least one class, got num_classes={num_classes}")
    if kind == "mlp":
        layers = nn.Sequential(nn.Linear(num_features, hidden), create_activation(activation))
        return Head(layers, hidden, num_classes, dropout)
    return Head(nn.Identity(), num_features, num_classes, dropout)
