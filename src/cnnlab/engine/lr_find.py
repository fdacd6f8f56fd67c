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
from typing import Any

import torch

from cnnlab.engine.module import ClassifierModule
from cnnlab.engine.optim import create_optimizer
from cnnlab.errors import DataError


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise DataError("lr_find: the training loader yields no batches")


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    return type(batch)(_to_device(b, device) for b in batch)


def suggest_lr(lrs: list[float], losses: list[float]) -> float:
    """The lr where the smoothed loss falls fastest (per log-lr), before its minimum."""
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    best = min(range(len(losses)), key=losses.__getitem__)
    end = max(best, 2)
    logs = [math.log10(lr) for lr in lrs[: end + 1]]
    slopes = [(losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, end)]
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


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

    Example:
        >>> lrs, losses, lr = lr_find(module, loader)  # doctest: +SKIP
    """
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
            avg = 0.9 * avg + 0.1 * raw if math.isfinite(raw) else math.inf
            smooth = avg / (1 - 0.9 ** (i + 1))  # bias-corrected moving average
            if not math.isfinite(smooth) or (i > 5 and smooth > 4 * best):
                break  # diverged: the remaining lrs are useless
            best = min(best, smooth)
            lrs.append(lr)
            losses.append(smooth)
    finally:
        module.load_state_dict(saved)
        torch.random.set_rng_state(rng)
        module.train(was_training)
    return lrs, losses, suggest_lr(lrs, losses)


def plot_lr_find(
    lrs: list[float], losses: list[float], suggestion: float, path: str | Path
) -> Path:
    """Plot loss against lr (log axis) with the suggestion marked; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
