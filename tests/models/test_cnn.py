"""Our own CNNs: shapes, gradients, parameter counts and the CNNSpec search space."""

from __future__ import annotations

import pytest
import torch

from cnnlab.config import CNNSpec
from cnnlab.errors import ModelError
from cnnlab.models.card import describe_model
from cnnlab.models.registry import OWN_MODELS, create_model

SMALL = [n for n in OWN_MODELS if n != "alexnet"]


@pytest.mark.parametrize("name", [*SMALL, "alexnet"])
def test_forward_backward_and_param_count(name: str) -> None:
    torch.manual_seed(0)
    size = 64 if name == "alexnet" else 32  # AlexNet's strides need at least ~63 px
    model = create_model(name, num_classes=4, img_size=size)
    x = torch.randn(2, 3, size, size)
    logits = model(x)
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    card = describe_model(model, size, 3)
    assert card["params"]["total"] == sum(p.numel() for p in model.parameters())
    assert card["params"]["trainable"] == card["params"]["total"]
    assert card["macs"] > 0
    assert model.backbone(x).shape == (2, model.num_features)
    assert model.stages and model.stages[-1] is not model.stages[0]


def test_default_cnn_is_a_small_fast_learner() -> None:
    model = create_model("cnn", num_classes=10)
    total = sum(p.numel() for p in model.parameters())
    assert 200_000 < total < 400_000  # 32-64-128 filters: ~0.29M weights, ~39M MACs at 32 px
    assert model.num_features == 128 and model.default_img_size == 32


def test_tiny_cnn_is_a_few_thousand_weights_and_learns() -> None:
    torch.manual_seed(0)
    model = create_model("tiny_cnn", num_classes=2)
    assert sum(p.numel() for p in model.parameters()) < 10_000
    x = torch.randn(32, 3, 32, 32)
    y = (x[:, 0].mean((1, 2)) > 0).long()  # a rule the net can pick up: red channel bias
    x[:, 0] += (y.float() * 2 - 1).view(-1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "spec",
    [
        {"activation": "leaky_relu"},
        {"activation": "elu", "batch_norm": False},
        {"activation": "gelu", "pooling": "avg"},
        {"activation": "silu", "dropout": 0.3},
        {"activation": "sigmoid", "global_pool": "max"},
        {"activation": "tanh", "global_pool": "flatten", "hidden_units": 32},
        {"filters": [8, 16], "convs_per_block": 1, "kernel_size": [5, 3]},
        {"filters": [8, 8, 8, 8], "kernel_size": 3, "global_pool": "flatten"},
    ],
)
def test_cnn_spec_variants(spec: dict) -> None:
    full = CNNSpec.model_validate({"filters": [8, 16, 32], **spec})
    model = create_model("cnn", num_classes=3, cnn_spec=full, img_size=32)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 3)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(full.filters) * full.convs_per_block
    sizes = (
        [full.kernel_size] * len(full.filters)
        if isinstance(full.kernel_size, int)
        else (full.kernel_size)
    )
    assert [c.kernel_size[0] for c in convs[:: full.convs_per_block]] == sizes
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert has_bn == full.batch_norm
    if full.dropout:
        assert any(isinstance(m, torch.nn.Dropout) for m in model.backbone.modules())
    if full.hidden_units:
        assert model.num_features == full.hidden_units


def test_flatten_pool_sizes_the_dense_layer_from_img_size() -> None:
    spec = {"filters": [8, 16], "global_pool": "flatten"}
    at32 = create_model("cnn", num_classes=2, cnn_spec=spec, img_size=32)
    at64 = create_model("cnn", num_classes=2, cnn_spec=spec, img_size=64)
    assert at32.num_features == 16 * 8 * 8
    assert at64.num_features == 16 * 16 * 16
    assert at64(torch.randn(1, 3, 64, 64)).shape == (1, 2)


def test_greyscale_input() -> None:
    model = create_model("basenet", num_classes=5, in_chans=1)
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 5)


def test_bad_spec_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="kernel_size has 2 entries"):
        create_model("cnn", 2, cnn_spec={"filters": [8, 8, 8], "kernel_size": [3, 3]})
    with pytest.raises(ModelError, match="too small"):
        create_model("cnn", 2, cnn_spec={"filters": [4] * 6}, img_size=16)


@pytest.mark.parametrize("head", ["linear", "mlp", "logreg", "svm"])
def test_heads(head: str) -> None:
    model = create_model("tiny_cnn", 3, head=head, head_hidden=16, head_dropout=0.2)
    assert isinstance(model.head.fc, torch.nn.Linear)
    assert model.head.fc.in_features == (16 if head == "mlp" else model.num_features)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ModelError, match="unknown head"):
        create_model("tiny_cnn", 3, head="forest")


@pytest.mark.parametrize(("name", "size"), [("cnn", 32), ("efficientnet_lite0", 64)])
def test_macs_remembered_per_backbone_equal_the_whole_count(
    name: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tune's trials share a backbone: its count is remembered, the head's is not."""
    from cnnlab.models import card

    monkeypatch.setattr(card, "_BACKBONE_MACS", {})
    linear = create_model(name, num_classes=5, head="linear")
    mlp = create_model(name, num_classes=5, head="mlp", head_hidden=128)
    first = card.count_macs(linear, size, 3)
    assert len(card._BACKBONE_MACS) == 1
    assert first == card._counted(linear.eval(), torch.zeros(1, 3, size, size))[0]
    wide = card.count_macs(mlp, size, 3)  # same backbone: remembered, the bigger head counted
    assert len(card._BACKBONE_MACS) == 1
    assert wide == card._counted(mlp.eval(), torch.zeros(1, 3, size, size))[0] > first
    assert card.count_macs(linear, size * 2, 3) > first  # another input size: its own count
    assert len(card._BACKBONE_MACS) == 2
