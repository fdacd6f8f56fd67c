"""Transfer-learning modes: which parts of a ``Classifier`` learn, and at what rate.

Modes:
    scratch   everything trains (random init).
    finetune  everything trains (pretrained init; the backbone usually at a lower lr).
    frozen    only the head trains; the backbone is fixed AND kept in eval mode, so its
              batch-norm statistics and dropout never change (features stay cacheable).
    partial:N the last N backbone stages and the head train; the rest is frozen as above.
    staged    starts frozen; ``unfreeze(model)`` later turns it into ``finetune``.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from cnnlab.errors import ConfigError

MODES = ("scratch", "frozen", "finetune", "staged")


def _check_mode(mode: str) -> str:
    if mode in MODES:
        return mode
    if mode.startswith("partial:") and mode.split(":", 1)[1].isdigit():
        return mode
    raise ConfigError(
        f"unknown model.mode '{mode}'; valid: scratch, frozen, finetune, staged, "
        "partial:N (train the last N stages)"
    )


def resolve_mode(name: str, mode: str | None) -> str:
    """The mode to use: the given one, or the model's default (ours: scratch, timm: finetune)."""
    if mode is None:
        from cnnlab.models.registry import model_info

        return model_info(name).default_mode
    return _check_mode(mode)


def resolve_pretrained(pretrained: str | bool, mode: str) -> bool:
    """``auto`` means pretrained for every mode except ``scratch``."""
    if isinstance(pretrained, bool):
        return pretrained
    value = str(pretrained).lower()
    if value not in {"auto", "true", "false"}:
        raise ConfigError(f"model.pretrained must be auto, true or false, got '{pretrained}'")
    if value == "auto":
        return mode != "scratch"
    if value == "false" and (mode == "frozen" or mode.startswith("partial:")):
        from cnnlab.console import warn

        # Allowed on purpose (a random-features baseline), but rarely what a user meant.
        warn(
            f"model.pretrained=false with mode {mode}: the frozen part of the backbone keeps "
            "its random initial weights and never learns"
        )
    return value == "true"


def _trainable_modules(model: nn.Module, mode: str) -> list[nn.Module]:
    """Backbone modules that learn under ``mode`` (all, none, or the last N stages)."""
    if mode in ("scratch", "finetune"):
        return [model.backbone]
    if mode in ("frozen", "staged"):
        return []
    n = int(mode.split(":", 1)[1])
    stages = model.stages
    if not 1 <= n <= len(stages):
        raise ConfigError(
            f"model.mode '{mode}': '{model.name}' has {len(stages)} stages; "
            f"use partial:1 .. partial:{len(stages)}"
        )
    return list(stages[len(stages) - n :])


def apply_mode(model: nn.Module, mode: str) -> nn.Module:
    """Set ``requires_grad`` and the eval-mode pinning of a ``Classifier`` for ``mode``.

    Returns the same model (changed in place); ``model.mode`` records the mode.
    """
    mode = _check_mode(mode)
    learn = _trainable_modules(model, mode)
    learn_ids = {id(m) for top in learn for m in top.modules()}
    learn_params = {id(p) for top in learn for p in top.parameters()}
    for p in model.backbone.parameters():
        p.requires_grad_(id(p) in learn_params)
    for p in model.head.parameters():
        p.requires_grad_(True)
    model.frozen_modules = [m for m in model.backbone.modules() if id(m) not in learn_ids]
    if getattr(model, "bn_stats_fixed", False):  # see fix_bn_stats
        model.frozen_modules += [
            m for m in model.backbone.modules() if isinstance(m, _BatchNorm) and id(m) in learn_ids
        ]
    model.mode = mode
    model.train(model.training)  # re-apply so frozen modules switch to eval now
    return model


def fix_bn_stats(model: nn.Module) -> nn.Module:
    """Keep the backbone's batch-norm running statistics as they are while it fine-tunes.

    Its batch-norm layers stay in eval mode (normalising with the pretrained statistics, which
    no longer update), while their scale and shift still learn. On a few images the running
    statistics otherwise drift within a handful of steps and no longer match the weights
    they are used with at evaluation. The choice survives ``unfreeze`` (staged mode).
    """
    model.bn_stats_fixed = True
    pinned = {id(m) for m in model.frozen_modules}
    model.frozen_modules += [
        m for m in model.backbone.modules() if isinstance(m, _BatchNorm) and id(m) not in pinned
    ]
    model.train(model.training)
    return model


def unfreeze(model: nn.Module) -> nn.Module:
    """End the frozen phase of ``staged`` training: the whole network learns from now on."""
    mode = model.mode
    apply_mode(model, "finetune")
    model.mode = mode
    return model


def _is_no_decay(name: str, param: nn.Parameter) -> bool:
    # Biases and norm scales/shifts are 1-D; decaying them only hurts (they set scale, not fit).
    return param.ndim <= 1 or name.endswith(".bias")


def no_decay_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    lr: float | None = None,
    name: str = "",
) -> list[dict]:
    """Trainable parameters split into a weight-decay group and a no-decay group.

    The one rule for every optimizer cnnlab builds: weights decay, biases and normalisation
    parameters do not. Empty groups are left out; ``lr`` and ``name`` are set when given.
    """
    decay, plain = [], []
    for pname, param in named_params:
        if param.requires_grad:
            (plain if _is_no_decay(pname, param) else decay).append(param)
    groups = []
    for suffix, params, wd in (("", decay, weight_decay), ("_no_decay", plain, 0.0)):
        if params:
            group: dict = {"params": params, "weight_decay": wd}
            if name:
                group["name"] = name + suffix
            if lr is not None:
                group["lr"] = lr
            groups.append(group)
    return groups


def param_groups(
    model: nn.Module, lr: float, backbone_lr_mult: float = 1.0, weight_decay: float = 0.0
) -> list[dict]:
    """Optimizer parameter groups: backbone vs head, each split into decay / no-decay.

    Only trainable parameters are included; empty groups are left out. Each group carries
    ``name``, ``lr`` and ``weight_decay`` (torch keeps extra keys such as ``name``).
    """
    groups = []
    for part, module, part_lr in (
        ("backbone", model.backbone, lr * backbone_lr_mult),
        ("head", model.head, lr),
    ):
        groups += no_decay_groups(module.named_parameters(), weight_decay, part_lr, part)
    return groups
