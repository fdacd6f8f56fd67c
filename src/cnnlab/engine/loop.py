"""The training half of ``fit``: the Lightning run, or the frozen fast path on cached features."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from cnnlab.config import DataConfig, TrainConfig
from cnnlab.console import info, warn
from cnnlab.engine.setup import DataBundle, ModelBundle

AUGMENT_KNOBS = ("hflip", "vflip", "shift", "zoom", "rotation", "shear", "brightness", "contrast")


@dataclass
class Outcome:
    """What training tells the rest of ``fit``."""

    epochs_run: int
    stopped_early: bool
    interrupted_by_time: bool
    precision: str
    lr: float
    best_epoch: int | None = None  # decided once, by train.monitor (None: no validation)
    prior_time_s: float = 0.0  # training time of earlier segments of a resumed run
    validation_skipped: bool = False  # the budget was shorter than the last validation pass


class StagedUnfreeze(L.Callback):
    """``staged`` mode: train the head on a frozen backbone, then unfreeze everything.

    Fires at the first epoch at or past ``freeze_epochs`` that this process trains, so a run
    resumed after the switch unfreezes at once instead of never.
    """

    def __init__(self, freeze_epochs: int) -> None:
        self.freeze_epochs = freeze_epochs
        self.unfrozen = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from cnnlab.models.transfer import unfreeze

        if trainer.current_epoch >= self.freeze_epochs and not self.unfrozen:
            unfreeze(pl_module.model)
            self.unfrozen = True
            info(f"epoch {trainer.current_epoch + 1}: backbone unfrozen")


def resolve_lr(train: TrainConfig, mode: str) -> float:
    from cnnlab.engine.optim import default_lr

    return train.lr if train.lr is not None else default_lr(train.optimizer, mode)


def _param_groups(mb: ModelBundle, train: TrainConfig, lr: float) -> list[dict]:
    from cnnlab.models.transfer import apply_mode, param_groups

    if mb.mode != "staged":
        return param_groups(mb.model, lr, train.backbone_lr_mult, train.weight_decay)
    # Staged runs unfreeze later: the optimizer must own the backbone parameters from the
    # start (they receive no gradient, so no update, while frozen).
    apply_mode(mb.model, "finetune")
    groups = param_groups(mb.model, lr, train.backbone_lr_mult, train.weight_decay)
    apply_mode(mb.model, "staged")
    return groups


def _loss(train: TrainConfig, data: DataBundle) -> torch.nn.Module:
    from cnnlab.engine.losses import create_loss, inverse_frequency_weights

    weights = None
    if train.class_weights == "auto":
        weights = inverse_frequency_weights(data.subset("train")[1], len(data.classes))
    return create_loss(train.loss, train.label_smoothing, weights, train.focal_gamma)


def _fit_module(
    module: L.LightningModule,
    train: TrainConfig,
    run_dir: Path,
    loaders: tuple,
    resume: bool,
    callbacks: tuple = (),
) -> Outcome:
    from cnnlab.engine.callbacks import RestoreBestWeights, TrainClock
    from cnnlab.engine.checkpoint import find_resume_checkpoint
    from cnnlab.engine.interrupt import InterruptWatch, fit_or_raise
    from cnnlab.engine.trainer import build_trainer, quiet_lightning_warnings

    guard = None
    if train.max_time is not None:
        from cnnlab.engine.budget import TimeBudget

        guard = TimeBudget(len(loaders[1].dataset))
        callbacks = (*callbacks, guard)
    watch = InterruptWatch()
    trainer = build_trainer(
        train, run_dir, max_epochs=train.epochs, callbacks_extra=(*callbacks, watch)
    )
    ckpt = find_resume_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        warn(
            f"{run_dir} has no checkpoint (it stopped before its first epoch ended): "
            "training starts again from epoch 1"
        )
    ckpt_path = str(ckpt) if ckpt else None
    with quiet_lightning_warnings():
        fit_or_raise(
            lambda: trainer.fit(module, loaders[0], loaders[1], ckpt_path=ckpt_path),
            watch,
            run_dir,
        )
    stopped = any(getattr(c, "stopped_epoch", 0) for c in trainer.early_stopping_callbacks)
    # a budget stop inside the last epoch leaves current_epoch == epochs: ask the guard too
    cut_short = guard is not None and guard.cut_short
    timed_out = train.max_time is not None and (trainer.current_epoch < train.epochs or cut_short)
    restore = _callback(trainer, RestoreBestWeights)
    return Outcome(
        trainer.current_epoch,
        bool(stopped),
        timed_out and not stopped,
        str(trainer.precision),
        float(train.lr or 0.0),
        best_epoch=restore.best_epoch if restore is not None else None,
        prior_time_s=_callback(trainer, TrainClock).prior_s,
        validation_skipped=guard is not None and guard.skipped_validation,
    )


def _callback(trainer: L.Trainer, kind: type) -> Any:
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


@dataclass
class Prepared:
    """A LightningModule with its loaders, ready for ``Trainer.fit`` or ``lr_find``."""

    module: L.LightningModule
    train_loader: object
    val_loader: object
    train: TrainConfig  # with the resolved learning rate
    callbacks: tuple = ()


def prepare_full(
    mb: ModelBundle, data: DataBundle, data_cfg: DataConfig, train: TrainConfig
) -> Prepared:
    """Loaders, transforms, loss and the LightningModule for whole-network training."""
    from cnnlab.batched import eval_batch_for
    from cnnlab.data.loaders import make_loader
    from cnnlab.data.transforms import build_eval_transform, build_train_transform
    from cnnlab.engine.module import ClassifierModule
    from cnnlab.engine.precision import prefers_fp32_training, resolve_channels_last, torch_device

    lr = resolve_lr(train, mb.mode)
    train = train.model_copy(update={"lr": lr})
    if train.precision == "auto" and prefers_fp32_training(mb.model, train.accelerator):
        train = train.model_copy(update={"precision": "32"})  # depthwise nets: fp32 is faster
    x_train, y_train = data.subset("train")
    x_val, y_val = data.subset("val")
    workers = data_cfg.num_workers
    train_loader = make_loader(
        x_train,
        y_train,
        train.batch_size,
        shuffle=True,
        seed=train.seed,
        drop_last=len(y_train) > train.batch_size,
        num_workers=workers,
    )
    gpu = torch_device(train.accelerator).type == "cuda"
    val_loader = make_loader(
        x_val,
        y_val,
        eval_batch_for(mb.model, data.channels, data.img_size, gpu),
        shuffle=False,
        seed=train.seed,
        num_workers=workers,
    )
    knobs = {k: getattr(data_cfg, k) for k in AUGMENT_KNOBS}
    model = mb.model
    if train.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    module = ClassifierModule(
        model, len(data.classes), train, steps_per_epoch=len(train_loader),
        loss=_loss(train, data),
        train_transform=build_train_transform(data.img_size, mb.mean, mb.std, data_cfg.augment,
                                              **knobs),
        eval_transform=build_eval_transform(data.img_size, mb.mean, mb.std),
        param_groups=_param_groups(mb, train, lr), mixup=data_cfg.mixup, cutmix=data_cfg.cutmix,
        channels_last=resolve_channels_last(train.channels_last, train.accelerator),
    )  # fmt: skip
    callbacks = (StagedUnfreeze(train.freeze_epochs),) if mb.mode == "staged" else ()
    return Prepared(module, train_loader, val_loader, train, callbacks)


def train_full(
    mb: ModelBundle,
    data: DataBundle,
    data_cfg: DataConfig,
    train: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    callbacks: tuple = (),
) -> Outcome:
    """Train the whole network (scratch, finetune, partial, staged) with Lightning.

    ``callbacks`` are extra Lightning callbacks (run observers), added after cnnlab's own.
    """
    prep = prepare_full(mb, data, data_cfg, train)
    loaders = (prep.train_loader, prep.val_loader)
    extra = (*prep.callbacks, *callbacks)
    return _fit_module(prep.module, prep.train, run_dir, loaders, resume, extra)


def feature_key(mb: ModelBundle, data: DataBundle, split: str, views: int) -> str:
    """Name of a feature-cache entry: same backbone + weights + images + view count."""
    text = f"{mb.name}|{mb.weights_source}|{data.cache_key}|{data.img_size}|{split}|{views}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def train_frozen(
    mb: ModelBundle,
    data: DataBundle,
    data_cfg: DataConfig,
    train: TrainConfig,
    head: str,
    run_dir: Path,
    callbacks: tuple = (),
) -> Outcome:
    """Frozen fast path: run the backbone once, cache the features, train only the head.

    ``callbacks`` reach the Lightning head training; a scikit-learn head has no epochs.
    """
    from cnnlab.data.loaders import make_loader
    from cnnlab.data.transforms import build_eval_transform, build_train_transform
    from cnnlab.engine import features as ft
    from cnnlab.engine.module import ClassifierModule
    from cnnlab.engine.precision import torch_device

    eval_tf = build_eval_transform(data.img_size, mb.mean, mb.std)
    views = train.frozen_views
    device = torch_device(train.accelerator)
    feats = {}
    for split in ("train", "val"):
        x, _ = data.tensor(split)
        if split == "train" and views > 1:
            knobs = {k: getattr(data_cfg, k) for k in AUGMENT_KNOBS}
            train_tf = build_train_transform(
                data.img_size, mb.mean, mb.std, data_cfg.augment, **knobs
            )
            f = ft.compute_features(
                mb.model.backbone,
                x,
                eval_tf,
                train.batch_size,
                cache_key=feature_key(mb, data, split, views),
                views=views,
                train_transform=train_tf,
                device=device,
            )
            feats[split] = f.reshape(-1, f.shape[-1])
        else:
            feats[split] = ft.compute_features(
                mb.model.backbone,
                x,
                eval_tf,
                max(train.batch_size, 128),
                cache_key=feature_key(mb, data, split, 1),
                device=device,
            )
    y_train = data.subset("train")[1].repeat(views) if views > 1 else data.subset("train")[1]
    y_val = data.subset("val")[1]
    if head in ("logreg", "svm"):
        weight, bias = ft.fit_sklearn_head(
            feats["train"], y_train, head, train.seed, num_classes=len(data.classes)
        )
        ft.load_linear_head(mb.model.head, weight, bias)
        _write_sklearn_metrics(mb.model.head, feats, y_train, y_val, run_dir)
        return Outcome(1, False, False, "32", 0.0, best_epoch=1)
    lr = resolve_lr(train, "frozen")
    train = train.model_copy(update={"lr": lr})
    loaders = (
        make_loader(
            feats["train"],
            y_train,
            train.batch_size,
            shuffle=True,
            seed=train.seed,
            drop_last=feats["train"].shape[0] > train.batch_size,
        ),
        make_loader(feats["val"], y_val, 1024, shuffle=False, seed=train.seed),
    )
    head_params = [p for p in mb.model.head.parameters() if p.requires_grad]
    module = ClassifierModule(
        mb.model.head,
        len(data.classes),
        train,
        steps_per_epoch=len(loaders[0]),
        loss=_loss(train, data),
        param_groups=[{"params": head_params, "lr": lr, "weight_decay": train.weight_decay}],
    )
    # Head training on features is a handful of matrix products: fp32 is as fast and exact,
    # and one thread is faster than two (see one_thread).
    with ft.one_thread():
        train32 = train.model_copy(update={"precision": "32"})
        return _fit_module(module, train32, run_dir, loaders, False, callbacks)


def _write_sklearn_metrics(
    head: torch.nn.Module,
    feats: dict[str, torch.Tensor],
    y_train: torch.Tensor,
    y_val: torch.Tensor,
    run_dir: Path,
) -> None:
    """One metrics.csv row for a scikit-learn head (it has no epochs)."""
    from sklearn.metrics import f1_score

    from cnnlab.engine.callbacks import COLUMNS
    from cnnlab.runs import METRICS, atomic_write_text

    row = {"epoch": 1}
    with torch.no_grad():
        for split, y in (("train", y_train), ("val", y_val)):
            logits = head(feats[split].float())
            loss = torch.nn.functional.cross_entropy(logits, y).item()
            pred = logits.argmax(1)
            row[f"{split}/loss"] = loss
            row[f"{split}/accuracy"] = (pred == y).float().mean().item()
            row[f"{split}/macro_f1"] = f1_score(y, pred, average="macro", zero_division=0)
    buffer = io.StringIO()  # same columns as every other run's metrics.csv
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    atomic_write_text(run_dir / METRICS, buffer.getvalue())
