"""Training choices that depend on the data: the batch size and batch-norm statistics.

A short run on a small folder is where defaults fail quietly (issue 10: 113 training images,
3 epochs at batch 64 = 6 optimizer steps, and the fine-tuned network collapsed). The choices
made here are printed and recorded in ``config.yaml`` and ``summary.json``.
"""

from __future__ import annotations

import os

from cnnlab.config import TrainConfig
from cnnlab.console import info
from cnnlab.engine.setup import ModelBundle

MIN_AUTO_BATCH = 8  # the automatic batch choice never goes below this many images
# A fine-tune shorter than this many optimizer steps keeps the pretrained batch-norm
# statistics (train.freeze_bn_stats=auto): with momentum 0.1 the running statistics need
# ~30 steps to follow the weights (0.9**30 = 4% left). (A measurement once cited here, from a
# bench/bench_small_data.py that was never committed, cannot be re-run: the threshold rests on
# that arithmetic alone.)
FEW_STEPS = 30


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimizer steps per epoch: the last partial batch is dropped when there is more than one."""
    return images // batch_size if images > batch_size else 1


def world_size(train: TrainConfig) -> int:
    """Processes that share each epoch under DDP (nodes x devices per node); 1 otherwise.

    ``WORLD_SIZE`` when a launcher set it (torchrun, Lightning's own ranks > 0); else the
    count Lightning will start from ``train.devices`` and ``train.num_nodes``, so rank 0
    (which plans before Lightning launches the others) gets the same number as its ranks.
    """
    from cnnlab.engine.precision import resolve_accelerator

    launched = os.environ.get("WORLD_SIZE", "")
    if launched.isdigit() and int(launched) > 0:
        return int(launched)
    devices = str(train.devices).strip().rstrip(",")
    if "," in devices:  # device indices, e.g. "0,1"
        per_node = len(devices.split(","))
    elif devices.isdigit():
        per_node = int(devices)
    elif resolve_accelerator(train.accelerator) == "cpu":  # auto: 1 process; -1: every core
        per_node = 1 if devices == "auto" else os.cpu_count() or 1
    else:
        import torch

        per_node = max(1, torch.cuda.device_count())
    return max(1, per_node) * train.num_nodes


def batch_size_chosen(train: TrainConfig) -> bool:
    """Whether ``train.batch_size`` was set rather than left at its default: by ``--batch-size``,
    a ``train.batch_size=`` override, a config file, a study cell or a tune trial (every one
    of them builds the config through :func:`cnnlab.config.load_config`, so pydantic knows)."""
    return "batch_size" in train.model_fields_set


def plan_batch_size(train: TrainConfig, images: int, world: int = 1) -> int:
    """The batch size to train with: the default ``train.batch_size``, halved while the run
    would take fewer than ``train.min_steps`` optimizer steps (down to ``MIN_AUTO_BATCH``);
    a batch size that was set (:func:`batch_size_chosen`) as given.

    A run of a handful of steps barely moves the weights, and a fine-tuned network's
    batch-norm statistics drift without the weights following: 113 images at batch 64 for 3
    epochs is 6 steps. A chosen batch size is kept because it is what the user, a study cell
    or a tune trial compares: shrinking it would train 64 and 16 at the same batch (and
    record one value while training another). Under DDP each of the ``world`` processes
    steps through its share of the images (the batch is per process), so the steps are
    counted on that share.
    """
    batch = train.batch_size
    if train.min_steps == 0 or batch_size_chosen(train):
        return batch
    share = -(-images // max(1, world))  # the distributed sampler pads to equal shares
    while (
        batch // 2 >= MIN_AUTO_BATCH
        and train.epochs * steps_per_epoch(share, batch) < train.min_steps
    ):
        batch //= 2
    return batch


def _say_batch(train: TrainConfig, batch: int, images: int, world: int) -> None:
    """Say why the batch was lowered, or that a chosen one gives fewer than min_steps steps."""
    given = train.epochs * steps_per_epoch(-(-images // world), train.batch_size)
    ranks = f" over {world} processes" if world > 1 else ""
    if batch != train.batch_size:
        info(
            f"batch size {train.batch_size} -> {batch}: {images} training images{ranks} x "
            f"{train.epochs} epochs would be only {given} optimizer steps (fewer than "
            f"train.min_steps={train.min_steps}); set train.batch_size={train.batch_size} "
            "(or train.min_steps=0) to keep it"
        )
    elif given < train.min_steps and batch_size_chosen(train):
        info(
            f"batch size {batch} as set: {images} training images{ranks} x {train.epochs} "
            f"epochs are only {given} optimizer steps (train.min_steps={train.min_steps} "
            "lowers only the default batch size)"
        )


def plan_training(
    train: TrainConfig, mb: ModelBundle, images: int, resume: bool = False
) -> TrainConfig:
    """Resolve the data-dependent training settings (batch size, batch-norm statistics),
    say what was chosen, and return the training config that records it.

    Args:
        train: the training config as given.
        mb: the model (its mode and whether it is pretrained).
        images: training images (times ``frozen_views`` in frozen mode).
        resume: continuing a saved run, whose batch size was resolved when it started.
    """
    from cnnlab.models.transfer import fix_bn_stats

    keep = resume or mb.create_kwargs.get("head") in ("logreg", "svm")  # fitted, not stepped
    world = world_size(train)
    share = -(-images // world)  # training images per process and epoch
    batch = train.batch_size if keep else plan_batch_size(train, images, world)
    if not keep:
        _say_batch(train, batch, images, world)
    freeze = train.freeze_bn_stats
    if freeze == "auto":
        steps = train.epochs * steps_per_epoch(share, batch)
        few = mb.pretrained and mb.mode != "frozen" and steps < FEW_STEPS
        freeze = "true" if few else "false"
        if few:
            info(
                f"a {steps}-step fine-tune is too short for batch-norm statistics to follow the "
                "weights: the pretrained ones are kept (train.freeze_bn_stats=false to update)"
            )
    if freeze == "true":
        fix_bn_stats(mb.model)
    return train.model_copy(update={"batch_size": batch, "freeze_bn_stats": freeze})
