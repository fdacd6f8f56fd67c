"""Learning-rate range test (Smith 2015): raise the lr exponentially, watch the loss.

Our own short loop rather than Lightning's Tuner: it needs no Trainer, runs the module's real
batch preparation and loss, and restores weights *and* the random state afterwards, so a run
started after an lr search is the same run it would have been without one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.errors import ConfigError, DataError

if TYPE_CHECKING:  # torch is imported where it is used: the checks below need none of it
    import torch

    from cnnlab.engine.module import ClassifierModule

SMOOTHING = 0.9  # the loss is a moving average over about 1 / (1 - 0.9) = 10 steps
WARMUP = 10  # steps before that average means more than a few batches (left out of the choice)
MIN_STEPS = 2 * WARMUP  # the warm-up, then as many steps to find the steepest descent in
MIN_IMAGES = 32  # fewer: every step sees the same few images, and the loss falls by memorising
MIN_DROP = 0.05  # a loss that never fell by 5 % of its start found no rate that trains


def check_range(min_lr: float, max_lr: float, num_steps: int) -> None:
    """Refuse a range test that cannot give a suggestion, before any work.

    Raises:
        ConfigError: ``min_lr`` not above 0, ``max_lr`` not above ``min_lr``, either not
            finite, or fewer than ``MIN_STEPS`` steps.
    """
    if not (math.isfinite(min_lr) and min_lr > 0):
        raise ConfigError(
            f"--min-lr {min_lr:g}: must be above 0 (the lr rises exponentially from it; "
            "default 1e-06)"
        )
    if not (math.isfinite(max_lr) and max_lr > min_lr):
        raise ConfigError(
            f"--max-lr {max_lr:g} must be above --min-lr {min_lr:g}: the test raises the lr "
            "from --min-lr to --max-lr (default 1)"
        )
    if num_steps < MIN_STEPS:
        raise ConfigError(
            f"--steps {num_steps}: need at least {MIN_STEPS}; the loss is averaged over about "
            f"{WARMUP} steps, and its first {WARMUP} follow single batches, so fewer cannot "
            "show where it falls fastest (default 100)"
        )


def check_images(count: int) -> None:
    """Refuse a range test on fewer than ``MIN_IMAGES`` training images (``ConfigError``)."""
    if count < MIN_IMAGES:
        raise ConfigError(
            f"only {count} training image(s): lr-find needs at least {MIN_IMAGES}; on fewer "
            "every step sees the same images, and a loss that falls by memorising them says "
            "nothing about the rate to train with"
        )


def distrust(lrs: list[float], losses: list[float], num_steps: int) -> str | None:
    """Why the curve gives no trustworthy suggestion, or ``None`` when it does."""
    if not losses:
        return "the loss was NaN or infinite from the first step; check the model and the data"
    if len(losses) < MIN_STEPS:
        return (
            f"the loss diverged (or became NaN) after {len(losses)} of {num_steps} steps, at lr "
            f"{lrs[-1]:.3g}: too few steps to judge (at least {MIN_STEPS}); lower --max-lr"
        )
    start, lowest = losses[WARMUP], min(losses[WARMUP:])
    if lowest > (1 - MIN_DROP) * start:
        return (
            f"the loss never fell (from {start:.4g} to at best {lowest:.4g}): no lr between "
            f"{lrs[0]:.3g} and {lrs[-1]:.3g} trained the model in {len(losses)} steps; try "
            "more --steps or a wider range"
        )
    return None


def caveats(lrs: list[float], losses: list[float], suggestion: float) -> list[str]:
    """Notes on a trustworthy suggestion that lies at an end of the range tested."""
    notes = []
    if suggestion == lrs[WARMUP + 1]:
        notes.append(
            "the loss fell fastest at the bottom of the range: a lower --min-lr may show a "
            "better rate"
        )
    if min(range(len(losses)), key=losses.__getitem__) == len(losses) - 1:
        notes.append("the loss was still falling at --max-lr: a higher one may show more")
    return notes


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise DataError("lr_find: the training loader yields no batches")


def _to_device(batch: Any, device: torch.device) -> Any:
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    return type(batch)(_to_device(b, device) for b in batch)


def suggest_lr(lrs: list[float], losses: list[float], skip: int = 0) -> float:
    """The lr where the smoothed loss falls fastest (per log-lr), before its minimum.

    ``skip``: leading points left out; the range test skips the moving average's warm-up,
    where it follows single batches and their noise looks like the steepest descent.
    """
    if len(lrs) < skip + 3:
        return lrs[skip] if len(lrs) > skip else float("nan")
    best = skip + min(range(len(losses) - skip), key=lambda i: losses[skip + i])
    end = max(best, skip + 2)
    logs = [math.log10(lr) for lr in lrs[: end + 1]]
    slopes = {
        i: (losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1])
        for i in range(skip + 1, end)
    }
    return lrs[min(slopes, key=slopes.__getitem__)]


def _step(module: ClassifierModule, optimizer: torch.optim.Optimizer, batch: Any) -> float:
    x, y = module.on_after_batch_transfer(batch, 0)[:2]
    loss = module.loss_fn(module(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def lr_find(
    module: ClassifierModule,
    train_loader: Iterable[Any],
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_steps: int = 100,
) -> tuple[list[float], list[float], float]:
    """Run the range test; the module's weights and the RNG state are restored afterwards.

    Returns:
        ``(lrs, smoothed_losses, suggestion)``; the test stops early once the loss diverges.
        :func:`distrust` says whether the suggestion can be trusted.

    Raises:
        ConfigError: a range or step count that cannot give a suggestion (:func:`check_range`).

    Example:
        >>> lrs, losses, lr = lr_find(module, loader)  # doctest: +SKIP
    """
    import torch

    from cnnlab.engine.optim import create_optimizer

    check_range(min_lr, max_lr, num_steps)
    cfg = module.cfg
    saved = copy.deepcopy(module.state_dict())
    rng = torch.random.get_rng_state()
    was_training = module.training
    groups = module.optimizer_groups()
    base = [g.get("lr", 1.0) for g in groups]  # keep per-group ratios (backbone vs head)
    top = max(base) if any("lr" in g for g in groups) else 1.0
    optimizer = create_optimizer(
        groups, cfg.optimizer, min_lr, cfg.momentum, cfg.nesterov, cfg.weight_decay
    )
    factor = (max_lr / min_lr) ** (1 / max(1, num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    module.train()
    try:
        batches = _cycle(train_loader)
        for i in range(num_steps):
            lr = min_lr * factor**i
            for group, b in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * b / top
            raw = _step(module, optimizer, _to_device(next(batches), module.device))
            avg = SMOOTHING * avg + (1 - SMOOTHING) * raw if math.isfinite(raw) else math.inf
            smooth = avg / (1 - SMOOTHING ** (i + 1))  # bias-corrected moving average
            if not math.isfinite(smooth) or (i > 5 and smooth > 4 * best):
                break  # diverged: the remaining lrs are useless
            best = min(best, smooth)
            lrs.append(lr)
            losses.append(smooth)
    finally:
        module.load_state_dict(saved)
        torch.random.set_rng_state(rng)
        module.train(was_training)
    return lrs, losses, suggest_lr(lrs, losses, skip=WARMUP)


def plot_lr_find(
    lrs: list[float], losses: list[float], suggestion: float, path: str | Path
) -> Path:
    """Plot loss against lr (log axis) with the suggestion marked; writes a PNG atomically
    (an interrupted save leaves the earlier plot, never half a file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnlab.atomic import atomic_path

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.plot(lrs, losses)
        ax.set_xscale("log")
        if math.isfinite(suggestion):
            ax.axvline(
                suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.2g}"
            )
            ax.legend()
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss (smoothed)")
        ax.set_title("learning-rate range test")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path
