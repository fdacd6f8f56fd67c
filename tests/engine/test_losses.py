"""Losses against torch's reference and against hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.engine.losses import create_loss, inverse_frequency_weights
from cnnlab.errors import ConfigError

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 2.0]])
TARGET = torch.tensor([0, 2, 1, 1])


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_ce_matches_torch_for_hard_labels(smoothing: float, weighted: bool) -> None:
    weights = torch.tensor([1.0, 2.0, 0.5]) if weighted else None
    ours = create_loss("ce", smoothing, weights)(LOGITS, TARGET)
    ref = F.cross_entropy(LOGITS, TARGET, weight=weights, label_smoothing=smoothing)
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)


def test_ce_soft_targets_by_hand() -> None:
    soft = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.5, 0.5]])
    logits = LOGITS[:2]
    logp = logits.log_softmax(1)
    by_hand = -(0.7 * logp[0, 0] + 0.3 * logp[0, 1] + 0.5 * logp[1, 1] + 0.5 * logp[1, 2]) / 2
    assert float(create_loss("ce")(logits, soft)) == pytest.approx(float(by_hand), rel=1e-6)
    # a one-hot soft target is the same as the hard label
    onehot = F.one_hot(TARGET, 3).float()
    assert float(create_loss("ce", 0.1)(LOGITS, onehot)) == pytest.approx(
        float(create_loss("ce", 0.1)(LOGITS, TARGET)), rel=1e-6
    )


def test_focal_by_hand_and_gamma_zero_is_ce() -> None:
    gamma = 2.0
    p = LOGITS.softmax(1)[torch.arange(4), TARGET]
    by_hand = (-((1 - p) ** gamma) * p.log()).mean()
    assert float(create_loss("focal", focal_gamma=gamma)(LOGITS, TARGET)) == pytest.approx(
        float(by_hand), rel=1e-5
    )
    zero = create_loss("focal", focal_gamma=0.0)(LOGITS, TARGET)
    assert float(zero) == pytest.approx(float(F.cross_entropy(LOGITS, TARGET)), rel=1e-5)


def test_focal_down_weights_easy_samples() -> None:
    easy = torch.tensor([[6.0, 0.0, 0.0]])
    ce = float(create_loss("ce")(easy, torch.tensor([0])))
    focal = float(create_loss("focal")(easy, torch.tensor([0])))
    assert focal < ce / 100


def test_losses_accept_bf16_logits_and_stay_finite() -> None:
    loss = create_loss("focal", 0.1, [1.0, 1.0, 1.0])(LOGITS.bfloat16(), TARGET)
    assert loss.dtype == torch.float32 and math.isfinite(float(loss))


def test_inverse_frequency_weights() -> None:
    w = inverse_frequency_weights([0, 0, 0, 1, 2, 2], num_classes=4)
    # N / (K * count): 6/(4*3), 6/(4*1), 6/(4*2), absent class 0
    assert w.tolist() == pytest.approx([0.5, 1.5, 0.75, 0.0])
    assert inverse_frequency_weights(torch.tensor([0, 1, 0, 1]), 2).tolist() == [1.0, 1.0]


def test_unknown_loss() -> None:
    with pytest.raises(ConfigError, match="ce, focal"):
        create_loss("hinge")
