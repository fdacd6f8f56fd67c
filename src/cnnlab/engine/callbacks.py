"""Lightning callbacks: the epoch's training metrics logged in time, progress with images/s and
ETA, metrics.csv, a throughput probe and restoring the best epoch's weights after fit."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from cnnlab import console
from cnnlab.engine.checkpoint import safe_load_checkpoint
from cnnlab.runs import atomic_write_text

COLUMNS = (
    "epoch", "train/loss", "train/accuracy", "train/macro_f1", "val/loss", "val/accuracy",
    "val/macro_f1", "lr", "epoch_time_s", "images_per_s",
)  # fmt: skip
WARN_AFTER_S = 600.0  # a run longer than this on this machine earns a suggestion


def _batch_size(batch: Any) -> int:
    x = batch[0] if isinstance(batch, list | tuple) else batch
    return int(x.shape[0]) if hasattr(x, "shape") else 0


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class LogTrainEpoch(Callback):
    """Have the module log its training epoch's values before any other callback reads them.

    Lightning calls callbacks' ``on_train_epoch_end`` before the module's, so values the
    module logged there would reach metrics.csv, the progress line and run observers one
    epoch late (or never). Put first in the callback list, this logs them just in time.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log = getattr(pl_module, "log_epoch_metrics", None)
        if callable(log):
            log("train")


class _EpochClock(Callback):
    """Times each training epoch and counts its images (shared by the callbacks below)."""

    def __init__(self) -> None:
        self.epoch_start = 0.0
        self.train_end = 0.0
        self.images = 0
        self.validated = False  # this epoch had a validation pass (TimeBudget may skip it)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.perf_counter()
        self.train_end = 0.0
        self.images = 0
        self.validated = False

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = self.validated or not trainer.sanity_checking

    def metric(self, trainer: L.Trainer, key: str) -> float | None:
        """This epoch's value of ``key``; none for val metrics when no pass ran this epoch
        (Lightning keeps the last epoch's values, which would read as this one's)."""
        if key.startswith("val/") and not self.validated:
            return None
        value = trainer.callback_metrics.get(key)
        return None if value is None else float(value)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.images += _batch_size(batch) * trainer.world_size
        self.train_end = time.perf_counter()

    def images_per_s(self) -> float:
        elapsed = (self.train_end or time.perf_counter()) - self.epoch_start
        return self.images / elapsed if elapsed > 0 else 0.0


class MetricsCSV(_EpochClock):
    """Write ``metrics.csv``: one row per epoch, rewritten atomically at each epoch's end.

    On resume the rows before the resumed epoch are kept, so the file reads like one run.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict[str, str]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_train_start, not on_fit_start: only now has a resume restored the epoch counter
        self.rows = []
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                old = list(csv.DictReader(fh))
            self.rows = [r for r in old if r.get("epoch", "").isdigit()]
            # epochs are numbered from 1; after a resume current_epoch counts completed ones
            self.rows = [r for r in self.rows if int(r["epoch"]) <= trainer.current_epoch]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        row: dict[str, str] = {"epoch": str(trainer.current_epoch + 1)}
        for key in COLUMNS[1:8]:
            value = self.metric(trainer, key)
            row[key] = "" if value is None else f"{value:.6g}"
        row["epoch_time_s"] = f"{time.perf_counter() - self.epoch_start:.3f}"
        row["images_per_s"] = f"{self.images_per_s():.1f}"
        self.rows.append(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buffer.getvalue())


class RichProgress(_EpochClock):
    """A rich progress bar per epoch (loss, images/s, run ETA) and one summary line per epoch.

    Silent under ``--quiet`` and on every process but rank zero.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bar: Any = None
        self.task: Any = None
        self.epoch_times: list[float] = []
        self.last_refresh = 0.0

    def _active(self, trainer: L.Trainer) -> bool:
        return trainer.is_global_zero and not console.is_quiet()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active(trainer):
            self.bar = console.progress_bar(transient=True)
            self.bar.start()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        if self.bar is not None:
            total = trainer.num_training_batches
            label = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
            total_arg = total if isinstance(total, int) else None
            self.task = self.bar.add_task(label, total=total_arg, extra="")

    def _run_eta(self, trainer: L.Trainer, done: int) -> float:
        total = trainer.num_training_batches if isinstance(trainer.num_training_batches, int) else 0
        left_epochs = (trainer.max_epochs or 0) - trainer.current_epoch - 1
        per_batch = (time.perf_counter() - self.epoch_start) / max(1, done)
        epoch = self.epoch_times[-1] if self.epoch_times else per_batch * total
        return per_batch * max(0, total - done) + left_epochs * epoch

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, idx)
        if self.bar is None:
            return
        self.bar.advance(self.task)
        now = time.perf_counter()
        if now - self.last_refresh < 0.5:  # reading the loss syncs a GPU: not every step
            return
        self.last_refresh = now
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        text = f"loss {float(loss):.4f} · {self.images_per_s():.0f} img/s"
        text += f" · run eta {_fmt_time(self._run_eta(trainer, idx + 1))}"
        self.bar.update(self.task, extra=text)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        elapsed = time.perf_counter() - self.epoch_start
        self.epoch_times.append(elapsed)
        if self.bar is None:
            return
        self.bar.remove_task(self.task)
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for key in ("train/loss", "val/loss", "val/accuracy", "val/macro_f1"):
            value = self.metric(trainer, key)
            if value is not None:
                parts.append(f"{key} {value:.4f}")
        parts.append(f"{self.images_per_s():.0f} img/s · {elapsed:.1f}s")
        self.bar.console.print("  ".join(parts), soft_wrap=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self.on_train_end(trainer, pl_module)  # leave the terminal usable after a crash


class ThroughputProbe(Callback):
    """Time the first few training batches and say what the run will cost before it does.

    Measured on the real first batches (batch 0 is warm-up and not counted), so the probe
    changes nothing about the training itself: no extra steps, weights or random draws.
    """

    def __init__(self, probe_batches: int = 4, warn_after_s: float = WARN_AFTER_S) -> None:
        self.probe_batches = probe_batches
        self.warn_after_s = warn_after_s
        self.start = 0.0
        self.images = 0
        self.done = False
        self.estimate: dict[str, float] = {}

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self.done:
            return
        total = trainer.num_training_batches
        if idx == 0:
            self.start, self.images = time.perf_counter(), 0
            if not isinstance(total, int) or total <= 1:
                self.done = True
            return
        self.images += _batch_size(batch)
        if idx >= min(self.probe_batches, total - 1):
            self.done = True
            self._report(trainer, time.perf_counter() - self.start, idx)

    def _report(self, trainer: L.Trainer, elapsed: float, timed_batches: int) -> None:
        per_batch = elapsed / timed_batches
        batches = int(trainer.num_training_batches)
        val = trainer.num_val_batches
        val_batches = sum(val) if isinstance(val, list) else 0
        epoch_s = per_batch * (batches + val_batches / 3)  # eval: forward only, ~1/3 of a step
        epochs = max(1, (trainer.max_epochs or 1) - trainer.current_epoch)
        run_s = epoch_s * epochs
        images_s = self.images / elapsed * trainer.world_size
        self.estimate = {"per_batch_s": per_batch, "epoch_s": epoch_s, "run_s": run_s}
        if not trainer.is_global_zero:
            return
        console.info(
            f"throughput: ~{images_s:.0f} img/s, ~{_fmt_time(epoch_s)} per epoch,"
            f" ~{_fmt_time(run_s)} for {epochs} epochs"
        )
        if run_s > self.warn_after_s:
            console.warn(
                f"this run will take ~{_fmt_time(run_s)} here; for a quicker one use a smaller"
                " image size (data.img_size=...), fewer epochs, or model.mode=frozen"
                " (features computed once), or set train.max_time=SECONDS"
            )


class RestoreBestWeights(Callback):
    """After fit, load the best checkpoint's weights (chosen by the monitored metric) back in.

    This is the one place the best epoch is decided: ``best_epoch`` (from 1) is the epoch of
    the checkpoint restored, and the summary, the plots and the report all take it from here.
    Runs on every process, so under DDP each replica ends with the same best weights.
    """

    def __init__(self) -> None:
        self.restored: Path | None = None
        self.best_epoch: int | None = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ckpt = trainer.checkpoint_callback
        best = getattr(ckpt, "best_model_path", "") if ckpt is not None else ""
        if not best or not Path(best).is_file():
            return  # no validation ever ran: keep the final weights
        saved = safe_load_checkpoint(best)
        pl_module.load_state_dict(saved["state_dict"])
        self.restored = Path(best)
        self.best_epoch = int(saved["epoch"]) + 1  # Lightning counts epochs from 0


class TrainClock(Callback):
    """Training time carried across segments: each checkpoint holds the time spent so far.

    A resumed run starts from its checkpoint's total (``prior_s``), so ``train_time_s`` in
    the summary counts every segment up to the state it continued from.
    """

    def __init__(self) -> None:
        self.prior_s = 0.0
        self.start = time.perf_counter()  # built with the Trainer, just before fit

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.prior_s + time.perf_counter() - self.start}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.prior_s = float(state_dict.get("elapsed_s", 0.0))


class RngState(L.Callback):
    """Save the torch and Python random states in each checkpoint and restore them on resume.

    Augmentation draws from the global torch generator; without this a resumed run would
    augment differently from an uninterrupted one and end with different weights. The states
    are plain tensors and int tuples, so checkpoints still load with ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        import random

        version, state, gauss = random.getstate()
        return {"torch": torch.get_rng_state(), "python": [version, list(state), gauss]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        import random

        torch.set_rng_state(state_dict["torch"])
        version, state, gauss = state_dict["python"]
        random.setstate((version, tuple(state), gauss))
