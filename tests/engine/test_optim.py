"""Every optimizer and scheduler builds by name and takes real steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.engine.optim import (
    OPTIMIZERS,
    SCHEDULERS,
    create_optimizer,
    create_scheduler,
    default_lr,
)
from cnnlab.errors import ConfigError


def _quadratic_step(opt: torch.optim.Optimizer, w: nn.Parameter) -> float:
    opt.zero_grad()
    loss = (w**2).sum()
    loss.backward()
    opt.step()
    return float((w.detach() ** 2).sum())


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_reduces_a_quadratic(name: str) -> None:
    w = nn.Parameter(torch.full((4,), 2.0))
    opt = create_optimizer([w], name, lr=default_lr(name) * 5, weight_decay=1e-4)
    start = float((w.detach() ** 2).sum())
    for _ in range(20):
        end = _quadratic_step(opt, w)
    assert end < start


def test_sgd_uses_nesterov_momentum_and_weight_decay() -> None:
    opt = create_optimizer([nn.Parameter(torch.ones(2))], "sgd", lr=0.1, weight_decay=5e-4)
    group = opt.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4


def test_per_group_lr_and_weight_decay_win() -> None:
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    groups = [{"params": [a], "lr": 0.001, "weight_decay": 0.0}, {"params": [b]}]
    opt = create_optimizer(groups, "adamw", lr=0.01, weight_decay=0.05)
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.01]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.05]


def test_unknown_optimizer_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="sgd, adam"):
        create_optimizer([nn.Parameter(torch.ones(1))], "adamm", lr=0.1)
    with pytest.raises(ConfigError, match="onecycle"):
        create_scheduler(torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1), "cos", 1, 1)


def test_default_lr_is_lower_for_finetuning() -> None:
    assert default_lr("sgd", "finetune") < default_lr("sgd", "scratch")
    assert default_lr("adam") == pytest.approx(1e-3)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adagrad"])
@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_steps_through_the_whole_run(name: str, optimizer: str) -> None:
    w = nn.Parameter(torch.ones(3))
    opt = create_optimizer([w], optimizer, lr=0.1)
    cfg = create_scheduler(opt, name, epochs=3, steps_per_epoch=4, warmup_epochs=1, step_size=1)
    if name == "none":
        assert cfg is None
        return
    sched, interval = cfg["scheduler"], cfg["interval"]
    lrs = []
    for _epoch in range(3):
        for _ in range(4):
            _quadratic_step(opt, w)
            lrs.append(opt.param_groups[0]["lr"])
            if interval == "step":
                sched.step()
        if interval == "epoch":
            sched.step(0.5) if name == "plateau" else sched.step()
    assert all(lr > 0 and lr <= 0.1 + 1e-9 for lr in lrs)
    if name in {"step", "exponential", "cosine", "onecycle"}:
        assert lrs[-1] < max(lrs)  # it really decays
    if name in {"cosine", "warmup", "onecycle"}:
        assert lrs[0] < max(lrs)  # it really warms up


def test_onecycle_peaks_at_each_groups_lr() -> None:
    a, b = nn.Parameter(torch.ones(1)), nn.Parameter(torch.ones(1))
    opt = create_optimizer([{"params": [a], "lr": 0.01}, {"params": [b], "lr": 0.1}], "sgd", 0.1)
    sched = create_scheduler(opt, "onecycle", epochs=2, steps_per_epoch=10)["scheduler"]
    peaks = [0.0, 0.0]
    for _ in range(20):
        _quadratic_step(opt, a)
        peaks = [max(p, g["lr"]) for p, g in zip(peaks, opt.param_groups, strict=True)]
        sched.step()
    assert peaks == pytest.approx([0.01, 0.1], rel=0.05)


def test_plateau_mode_follows_the_metric() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.1)
    assert create_scheduler(opt, "plateau", 1, 1, monitor="val/loss")["scheduler"].mode == "min"
    cfg = create_scheduler(opt, "plateau", 1, 1, monitor="val/macro_f1")
    assert cfg["scheduler"].mode == "max" and cfg["monitor"] == "val/macro_f1"


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8])
def test_onecycle_survives_runs_of_a_few_steps(steps: int) -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = create_scheduler(optimizer, "onecycle", 1, steps)["scheduler"]
    lrs = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert all(lr >= 0 for lr in lrs)
