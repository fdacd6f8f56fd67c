"""Optimizer and learning-rate scheduler factories, chosen by name.

One ``create_*`` verb per concept (as in timm) so the CLI, the tuner and the tests can
enumerate what exists. The scheduler factory returns Lightning's ``lr_scheduler`` config dict,
so ``ClassifierModule.configure_optimizers`` hands it over as is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from cnnlab.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "nadam", "radam", "rmsprop", "adadelta", "adagrad", "asgd")
SCHEDULERS = (
    "none", "step", "multistep", "exponential", "cosine", "onecycle", "plateau", "warmup",
)  # fmt: skip

# Peak learning rates that work out of the box. SGD's is a one-cycle peak for a batch-norm CNN
# trained from scratch (measured on a 10-class 32-px set); adaptive methods want ~1e-3.
_DEFAULT_LR = {
    "sgd": 0.05,
    "adam": 1e-3,
    "adamw": 1e-3,
    "nadam": 1e-3,
    "radam": 1e-3,
    "rmsprop": 1e-3,
    "adadelta": 1.0,  # Adadelta scales its own steps; 1.0 is the paper's setting
    "adagrad": 1e-2,
    "asgd": 1e-2,
}
# Pretrained backbones are ruined by a scratch-sized lr; heads on frozen features tolerate more.
_MODE_FACTOR = {"scratch": 1.0, "frozen": 1.0, "finetune": 0.1, "staged": 0.1, "partial": 0.2}


def _check_name(kind: str, name: str, valid: Sequence[str]) -> str:
    key = name.lower()
    if key not in valid:
        raise ConfigError(f"unknown {kind} '{name}'; valid: {', '.join(valid)}")
    return key


def default_lr(name: str, mode: str = "scratch") -> float:
    """A sensible peak learning rate for an optimizer and a transfer mode.

    Args:
        name: optimizer name (see ``OPTIMIZERS``).
        mode: ``scratch``, ``frozen``, ``finetune``, ``staged`` or ``partial:N``.
    """
    key = _check_name("optimizer", name, OPTIMIZERS)
    factor = _MODE_FACTOR.get(mode.split(":", 1)[0], 1.0)
    if mode == "frozen" and key == "sgd":
        factor = 0.2  # a linear head on fixed features: 0.01 is plenty, 0.05 overshoots
    return _DEFAULT_LR[key] * factor


def create_optimizer(
    params_or_groups: Iterable[Any],
    name: str,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Build an optimizer by name.

    Per-group ``lr`` / ``weight_decay`` keys in ``params_or_groups`` win over the arguments
    (torch fills in only what a group leaves out), which is how fine-tuning gives the
    backbone a smaller lr than the head.

    Example:
        >>> opt = create_optimizer(model.parameters(), "sgd", lr=0.05)  # doctest: +SKIP
    """
    key = _check_name("optimizer", name, OPTIMIZERS)
    params = list(params_or_groups)
    if not params:
        raise ConfigError("no trainable parameters; check model.mode (everything is frozen)")
    opt = torch.optim
    wd = weight_decay
    if key == "sgd":
        return opt.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0, weight_decay=wd
        )
    if key == "rmsprop":
        return opt.RMSprop(params, lr=lr, momentum=momentum, weight_decay=wd)
    classes = {
        "adam": opt.Adam,
        "adamw": opt.AdamW,
        "nadam": opt.NAdam,
        "radam": opt.RAdam,
        "adadelta": opt.Adadelta,
        "adagrad": opt.Adagrad,
        "asgd": opt.ASGD,
    }
    return classes[key](params, lr=lr, weight_decay=wd)


class _FollowsRunLength:
    """Mixin for schedules whose shape depends on the run's length (one-cycle, cosine).

    On resume Lightning loads the saved scheduler state, which would bring back the old
    total: a run extended with ``--epochs N`` would then crash (one-cycle) or keep the old
    curve. Here the state restores only the position (steps done); the shape stays the one
    built for the current run length, and the optimizer's lr is set from it at once. With
    the same length nothing changes, so a plain resume stays bit-exact.
    """

    _shape_keys: tuple[str, ...] = ()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        import warnings

        keep = {k: self.__dict__[k] for k in self._shape_keys}
        super().load_state_dict(state_dict)  # type: ignore[misc]
        self.__dict__.update(keep)
        total = getattr(self, "total_steps", None)
        if total is not None and self.last_epoch > total:  # type: ignore[attr-defined]
            raise ConfigError(
                f"cannot resume a {total}-step one-cycle schedule after {self.last_epoch} steps "  # type: ignore[attr-defined]
                "(fewer epochs than already trained); pass --epochs N larger than that"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch: get_lr() outside step() is fine here
            lrs = self.get_lr()  # type: ignore[attr-defined]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):  # type: ignore[attr-defined]
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]  # type: ignore[attr-defined]


class _OneCycle(_FollowsRunLength, torch.optim.lr_scheduler.OneCycleLR):
    _shape_keys = ("total_steps", "_schedule_phases")


class _Lambda(_FollowsRunLength, LambdaLR):
    _shape_keys = ("lr_lambdas",)


def _warmup_lambda(warmup_steps: int, after: Any = None) -> Any:
    """Multiplier: linear from ~0 to 1 over ``warmup_steps``, then ``after(step)`` or 1."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return 1.0 if after is None else after(step - warmup_steps)

    return factor


def _cosine(optimizer: torch.optim.Optimizer, total: int, warmup: int) -> LRScheduler:
    decay = max(1, total - warmup)

    def cosine(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, decay) / decay))

    return _Lambda(optimizer, _warmup_lambda(warmup, cosine))


def _plateau_mode(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"


def create_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int = 0,
    step_size: int = 10,
    milestones: Sequence[int] = (30, 60),
    gamma: float = 0.1,
    plateau_patience: int = 3,
    monitor: str = "val/macro_f1",
) -> dict[str, Any] | None:
    """Build a learning-rate schedule as a Lightning ``lr_scheduler`` config dict.

    Per-step schedules (``cosine``, ``onecycle``, ``warmup``) advance every optimizer step
    so short runs still get a smooth curve; epoch-based ones (``step``, ``multistep``,
    ``exponential``, ``plateau``) count epochs as users expect from their names. ``onecycle``
    and ``cosine`` span the whole run: a run resumed with more epochs follows the curve of
    the new length from the step it reached (see ``_FollowsRunLength``).

    Returns:
        ``{"scheduler", "interval", ...}`` or ``None`` for ``none``.
    """
    key = _check_name("scheduler", name, SCHEDULERS)
    steps = max(1, steps_per_epoch)
    total = max(1, epochs * steps)
    warmup = warmup_epochs * steps
    sched = torch.optim.lr_scheduler
    if key == "none":
        return None
    if key == "step":
        return {"scheduler": sched.StepLR(optimizer, step_size, gamma), "interval": "epoch"}
    if key == "multistep":
        return {
            "scheduler": sched.MultiStepLR(optimizer, list(milestones), gamma),
            "interval": "epoch",
        }
    if key == "exponential":
        return {"scheduler": sched.ExponentialLR(optimizer, gamma), "interval": "epoch"}
    if key == "cosine":
        return {"scheduler": _cosine(optimizer, total, warmup), "interval": "step"}
    if key == "warmup":
        return {
            "scheduler": LambdaLR(optimizer, _warmup_lambda(max(1, warmup))),
            "interval": "step",
        }
    if key == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        defaults = optimizer.defaults  # only cycle momentum where the optimizer has one
        cycle = "betas" in defaults or defaults.get("momentum", 0.0) > 0
        # OneCycleLR divides by the length of each phase: with a handful of steps (tiny runs)
        # 25% warm-up can round to zero steps, so give each phase at least ~1.5 steps.
        total = max(total, 2)
        warm = min(0.75, max(0.25, 1.5 / total))
        one = _OneCycle(
            optimizer, max_lr=peaks, total_steps=total, pct_start=warm, cycle_momentum=cycle
        )
        return {"scheduler": one, "interval": "step"}
    plateau = sched.ReduceLROnPlateau(
        optimizer, mode=_plateau_mode(monitor), factor=gamma, patience=plateau_patience
    )
    return {"scheduler": plateau, "interval": "epoch", "monitor": monitor, "strict": False}
