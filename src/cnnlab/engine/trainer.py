"""Build the Lightning Trainer from the training config, with cnnlab's callbacks wired in."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from cnnlab.config import TrainConfig
from cnnlab.engine.callbacks import (
    LogTrainEpoch,
    MetricsCSV,
    RestoreBestWeights,
    RichProgress,
    RngState,
    ThroughputProbe,
    TrainClock,
)
from cnnlab.engine.checkpoint import AtomicCheckpointIO
from cnnlab.engine.precision import (
    resolve_accelerator,
    resolve_channels_last,
    resolve_precision,
)
from cnnlab.runs import CHECKPOINTS, METRICS


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch, and derive DataLoader worker seeds from it."""
    return L.seed_everything(seed, workers=True, verbose=False)


def monitor_mode(monitor: str) -> str:
    """``min`` for losses, ``max`` for everything else (accuracy, F1, ...)."""
    return "min" if monitor.endswith("loss") else "max"


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose saved state follows the run folder when it is moved.

    Lightning drops the best score and the top-k record when a checkpoint was written under
    another folder path; a run copied to another disk or machine and resumed there would then
    crown the first resumed epoch "best", and end with other weights than if left in place.
    """

    @property
    def state_key(self) -> str:
        # the plain ModelCheckpoint's key, so checkpoints written before this class still match
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def save_unvalidated_epoch(self) -> None:
        """Save at this training epoch's end, as validation will not run (``TimeBudget``).

        Only the monitor-free ``last`` saves then; ``best`` keeps the best validated epoch
        (left to itself it would try to save, find no val metric, and fail).
        """
        self._save_on_train_epoch_end = self.monitor is None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:
            state_dict = {k: _moved(v, old, new) for k, v in state_dict.items()}
        super().load_state_dict(state_dict)


def _moved(value: Any, old: str, new: str) -> Any:
    """Paths (and the keys of ``best_k_models``) under ``old`` rewritten to lie under ``new``."""
    if isinstance(value, dict):
        return {_moved(k, old, new): v for k, v in value.items()}
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old) :]
    return value


def _checkpoint_callbacks(run_dir: Path, monitor: str | None) -> list[ModelCheckpoint]:
    """``best.ckpt`` by the monitored metric and ``last.ckpt`` after every epoch.

    Lightning >= 2.5 writes ``save_last`` only in epochs that also wrote a top-k checkpoint,
    which would leave resume far behind; a second, monitor-free callback saves ``last`` each
    epoch. It comes after the best one, so ``last.ckpt`` holds the updated best state.
    """
    folder = run_dir / CHECKPOINTS
    common: dict[str, Any] = {"dirpath": folder, "enable_version_counter": False}
    last = RunCheckpoint(filename="last", monitor=None, save_top_k=1, **common)
    if monitor is None:
        return [last]
    best = RunCheckpoint(
        filename="best", monitor=monitor, mode=monitor_mode(monitor), save_top_k=1,
        auto_insert_metric_name=False, **common,
    )  # fmt: skip
    return [best, last]


def build_callbacks(
    train: TrainConfig, run_dir: Path, validate: bool, progress: bool
) -> list[Callback]:
    """The callbacks every run gets, in the order they should fire."""
    monitor = train.monitor if validate else None
    callbacks: list[Callback] = [
        LogTrainEpoch(),  # first: every callback after it reads this epoch's train metrics
        *_checkpoint_callbacks(run_dir, monitor),
        RngState(),
        TrainClock(),
    ]
    if monitor and train.early_stopping:
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                mode=monitor_mode(monitor),
                patience=train.patience,
                min_delta=train.min_delta,
                check_on_train_epoch_end=False,
            )
        )
    callbacks += [MetricsCSV(run_dir / METRICS), ThroughputProbe()]
    if progress:
        callbacks.append(RichProgress())
    if monitor:
        callbacks.append(RestoreBestWeights())
    return callbacks


@contextlib.contextmanager
def quiet_lightning_warnings() -> Iterator[None]:
    """Silence, for one ``Trainer.fit`` only, Lightning warnings that are noise for cnnlab users.

    Scoped with ``catch_warnings`` so the process's own warning filters are left as they were.
    """
    with warnings.catch_warnings():
        # Lightning 2.6 trips over its own deprecation of torch's LeafSpec on every run.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        # Frozen backbones are kept in eval mode on purpose (their batch norm must not update).
        warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
        # A resumed run writes into its own checkpoints/ folder on purpose.
        warnings.filterwarnings(
            "ignore", message=r"Checkpoint directory .* exists and is not empty"
        )
        yield


def _quiet_lightning_banners() -> None:
    """Lightning's INFO lines (GPU available, tips, AMP notices, "Received SIGTERM") are noise
    in cnnlab's output."""
    for name in (
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.trainer.connectors.signal_connector",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def sync_batchnorm(accelerator: str) -> bool:
    """Batch norm synchronised across processes (SyncBatchNorm) on GPUs.

    Under DDP each process sees a slice of the global batch; synchronising the batch-norm
    statistics makes them those of the whole batch, as in a single-process run. Lightning
    converts the layers only for multi-process strategies, so a one-device run is unchanged.
    PyTorch's SyncBatchNorm runs on CUDA-like devices only: on CPU ranks (gloo) each
    process keeps its own statistics.
    """
    return accelerator in ("gpu", "cuda")


def cudnn_benchmark(accelerator: str) -> bool:
    """cuDNN autotuning (``torch.backends.cudnn.benchmark``) on GPUs.

    A run's images all have one size, so the fastest convolution algorithms are searched
    once per shape and reused. Measured on an H200 (bench/RESULTS.md section 14, the default
    cnn at 64 px, warm): 1.07x at batch 64, 1.09x at 256, 1.44x at 1024. GPU runs are not
    bit-for-bit deterministic either way; on CPUs the flag does nothing.
    """
    return accelerator in ("gpu", "cuda")


def build_trainer(
    train: TrainConfig,
    run_dir: str | Path,
    max_epochs: int,
    callbacks_extra: Sequence[Callback] = (),
    enable_progress: bool = True,
    validate: bool = True,
) -> L.Trainer:
    """A Lightning Trainer wired for cnnlab runs.

    Args:
        train: the training config (devices, precision, clipping, monitor, time budget...).
        run_dir: the run folder; checkpoints go to ``run_dir/checkpoints``, metrics to
            ``run_dir/metrics.csv``.
        max_epochs: epochs for this fit call (staged fine-tuning runs two fits).
        callbacks_extra: more callbacks, appended after cnnlab's own.
        enable_progress: show the rich progress bar and per-epoch lines.
        validate: False when there is no validation split: no best checkpoint, no early stop.

    Example:
        >>> trainer = build_trainer(cfg.train, run.path, cfg.train.epochs)  # doctest: +SKIP
        >>> trainer.fit(module, train_loader, val_loader)                   # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _quiet_lightning_banners()
    accelerator = resolve_accelerator(train.accelerator)
    channels_last = resolve_channels_last(train.channels_last, accelerator)
    kwargs: dict[str, Any] = {}
    if train.max_time is not None:
        kwargs["max_time"] = timedelta(seconds=train.max_time)
    return L.Trainer(
        accelerator=accelerator,
        devices=train.devices,
        strategy=train.strategy,
        num_nodes=train.num_nodes,
        sync_batchnorm=sync_batchnorm(accelerator),
        precision=resolve_precision(train.precision, accelerator, channels_last),
        max_epochs=max_epochs,
        gradient_clip_val=train.grad_clip,
        callbacks=[*build_callbacks(train, run_dir, validate, enable_progress), *callbacks_extra],
        plugins=[AtomicCheckpointIO()],
        deterministic=accelerator == "cpu",  # free on CPU; on GPUs it costs speed
        benchmark=cudnn_benchmark(accelerator),
        default_root_dir=run_dir,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        **kwargs,
    )
