"""Training choices that depend on the data: the batch size and batch-norm statistics.

A short run on a small folder is where defaults fail quietly (issue 10: 113 training images,
3 epochs at batch 64 = 6 optimizer steps, and the fine-tuned network collapsed). The choices
made here are printed and recorded in ``config.yaml`` and ``summary.json``.
"""

from __future__ import annotations

from cnnlab.config import TrainConfig
from cnnlab.console import info
from cnnlab.engine.setup import ModelBundle

MIN_AUTO_BATCH = 8  # the automatic batch choice never goes below this many images
# A fine-tune shorter than this many optimizer steps keeps the pretrained batch-norm
# statistics (train.freeze_bn_stats=auto): with momentum 0.1 the running statistics need
# ~30 steps to follow the weights (0.9**30 = 4% left). Measured in bench/bench_small_data.py:
# fixing them rescues a 3-step run (0.18 -> 0.94 test accuracy) but made one seed of a
# 42-step run diverge (1.00 -> 0.09), where updating them was right.
FEW_STEPS = 30


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimizer steps per epoch: the last partial batch is dropped when there is more than one."""
    return images // batch_size if images > batch_size else 1


def plan_batch_size(train: TrainConfig, images: int) -> int:
    """The batch size to train with: ``train.batch_size``, halved while the run would take
    fewer than ``train.min_steps`` optimizer steps (down to ``MIN_AUTO_BATCH``).

    A run of a handful of steps barely moves the weights, and a fine-tuned network's
    batch-norm statistics drift without the weights following: 113 images at batch 64 for 3
    epochs is 6 steps. Halving keeps the batch a power of two when the user's is one.
    """
    batch = train.batch_size
    if train.min_steps == 0:
        return batch
    while (
        batch // 2 >= MIN_AUTO_BATCH
        and train.epochs * steps_per_epoch(images, batch) < train.min_steps
    ):
        batch //= 2
    return batch


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
    batch = train.batch_size if keep else plan_batch_size(train, images)
    if batch != train.batch_size:
        before = train.epochs * steps_per_epoch(images, train.batch_size)
        info(
            f"batch size {train.batch_size} -> {batch}: {images} training images x "
            f"{train.epochs} epochs would be only {before} optimizer steps (fewer than "
            f"train.min_steps={train.min_steps}); set train.min_steps=0 to keep {train.batch_size}"
        )
    freeze = train.freeze_bn_stats
    if freeze == "auto":
        steps = train.epochs * steps_per_epoch(images, batch)
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
