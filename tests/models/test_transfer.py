"""Transfer modes: what learns, what stays bit-identical, and the optimizer groups."""

from __future__ import annotations

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.models.registry import create_model
from cnnlab.models.transfer import (
    apply_mode,
    param_groups,
    resolve_mode,
    resolve_pretrained,
    unfreeze,
)


def _steps(model: torch.nn.Module, n: int = 3) -> None:
    torch.manual_seed(1)
    opt = torch.optim.SGD(param_groups(model, lr=0.1, weight_decay=1e-3), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(n):
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["tiny_cnn", "basenet_plus"])
def test_frozen_backbone_is_bit_identical(name: str) -> None:
    model = apply_mode(create_model(name, num_classes=3), "frozen")
    before, head_before = _snapshot(model.backbone), _snapshot(model.head)
    _steps(model)
    after = model.backbone.state_dict()
    for key, value in before.items():  # weights AND batch-norm running stats
        assert torch.equal(value, after[key]), key
    assert not all(torch.equal(v, model.head.state_dict()[k]) for k, v in head_before.items())
    assert model.training and not any(m.training for m in model.backbone.modules())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert model.mode == "frozen"


def test_partial_trains_only_the_last_stages() -> None:
    model = create_model("tiny_cnn", num_classes=3)
    stages = model.stages
    apply_mode(model, "partial:1")
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in [*stages[-1].parameters(), *model.head.parameters()]}
    before = _snapshot(stages[0])
    _steps(model)
    assert all(torch.equal(v, stages[0].state_dict()[k]) for k, v in before.items())
    assert not stages[0].training and stages[-1].training
    apply_mode(model, "partial:2")
    assert all(p.requires_grad for s in stages[-2:] for p in s.parameters())
    assert not any(p.requires_grad for p in stages[0].parameters())
    with pytest.raises(ConfigError, match=r"partial:1 \.\. partial:3"):
        apply_mode(model, "partial:9")


def test_partial_on_a_timm_backbone_splits_into_stages() -> None:
    model = create_model("resnet18", num_classes=3)
    assert len(model.stages) == 5
    apply_mode(model, "partial:1")
    names = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("layer4.") for n in names)
    stage_params = sum(p.numel() for s in model.stages for p in s.parameters())
    assert stage_params == sum(p.numel() for p in model.backbone.parameters())


def test_staged_starts_frozen_then_unfreezes() -> None:
    model = apply_mode(create_model("tiny_cnn", num_classes=3), "staged")
    assert not any(p.requires_grad for p in model.backbone.parameters())
    unfreeze(model)
    model.train()
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())
    assert model.mode == "staged"


def test_scratch_and_finetune_train_everything() -> None:
    model = apply_mode(apply_mode(create_model("tiny_cnn", 3), "frozen"), "finetune")
    assert all(p.requires_grad for p in model.parameters()) and not model.frozen_modules
    with pytest.raises(ConfigError, match=r"unknown model\.mode"):
        apply_mode(model, "melt")


def test_param_groups_split_decay_and_rates() -> None:
    model = create_model("tiny_cnn", num_classes=3)
    groups = {g["name"]: g for g in param_groups(model, 0.1, backbone_lr_mult=0.1,
                                                  weight_decay=5e-4)}  # fmt: skip
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    assert groups["backbone"]["lr"] == pytest.approx(0.01) and groups["head"]["lr"] == 0.1
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["head"]["weight_decay"] == 5e-4
    assert all(p.ndim > 1 for p in groups["backbone"]["params"])
    assert all(p.ndim == 1 for p in groups["backbone_no_decay"]["params"])
    n_groups = sum(len(g["params"]) for g in groups.values())
    assert n_groups == len(list(model.parameters()))
    apply_mode(model, "frozen")
    assert {g["name"] for g in param_groups(model, 0.1)} == {"head", "head_no_decay"}


def test_resolve_mode_and_pretrained() -> None:
    assert resolve_mode("cnn", None) == "scratch"
    assert resolve_mode("resnet18", None) == "finetune"
    assert resolve_mode("cnn", "partial:2") == "partial:2"
    assert resolve_pretrained("auto", "scratch") is False
    assert resolve_pretrained("auto", "frozen") is True
    assert resolve_pretrained("false", "finetune") is False
    assert resolve_pretrained("true", "scratch") is True
