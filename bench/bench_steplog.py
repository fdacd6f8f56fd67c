"""Per-step logging: ``self.log`` + torchmetrics each step vs epoch tallies, side by side.

The training module used to log the loss, the lr and two torchmetrics objects through
``self.log`` at every step (~2 ms a step on this machine). It now adds to running sums on the
device (``engine.epoch_metrics.EpochTally``) and logs once per epoch. This runs, in one
process and alternating round by round, the same Lightning fit with:
- ``old``: the module as it was at ``--old-rev`` (its source read with ``git show``);
- ``new``: the module in this tree;
- ``none``: the new module with the tally switched off, the floor of what logging can cost;
on two workloads: the default ``cnn`` at 32 px on 2,000 generated images (train transform,
default precision) and a linear head on 2,000 cached 512-d features (a tuning trial's step).
Each epoch is timed (training + validation) and the best epoch per variant is kept; the first
epoch of each fit is a warm-up and not counted.

Usage: python bench/bench_steplog.py [--quick] [--rounds N] [--old-rev REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from common import REPO_ROOT, ratio, save_result, shapes_image, table

sys.path.insert(0, str(REPO_ROOT / "src"))

from cnnlab.config import TrainConfig
from cnnlab.data.transforms import build_eval_transform, build_train_transform
from cnnlab.engine import module as new_module
from cnnlab.engine.callbacks import LogTrainEpoch
from cnnlab.engine.losses import create_loss
from cnnlab.engine.precision import resolve_precision
from cnnlab.models.registry import create_model

OLD_REV = "5cc01fe8aa"  # the last commit whose module logged through self.log every step
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def load_old_module(rev: str) -> Any:
    """``cnnlab.engine.module`` as it was at ``rev``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/cnnlab/engine/module.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "old_module.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_module", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _NoTally:
    empty = True

    def update(self, *args: Any, **kwargs: Any) -> None:
        pass

    def reset(self) -> None:
        pass


def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    arrays = [np.asarray(shapes_image(int(c), rng, 32)) for c in labels]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def features(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    return torch.randn(n, 512, generator=g) + torch.nn.functional.one_hot(labels, 512) * 3, labels


class EpochTimer(L.Callback):
    """Per epoch: ms per training step (batch 0 is warm-up) and the whole epoch's seconds."""

    def __init__(self) -> None:
        self.step_ms: list[float] = []
        self.epoch_s: list[float] = []
        self.steps = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.first = self.last = time.perf_counter()
        self.steps = 0

    def on_train_batch_end(self, *args: Any) -> None:
        self.last = time.perf_counter()
        if self.steps == 0:
            self.first = self.last
        self.steps += 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.step_ms.append((self.last - self.first) / max(1, self.steps - 1) * 1e3)
        self.epoch_s.append(time.perf_counter() - self.start)


def fit_once(kind: str, variant: str, old: Any, data: dict, epochs: int) -> tuple[float, float]:
    """Best ms per training step and best epoch seconds (train + val), warm-up epoch left out."""
    torch.manual_seed(0)
    train = TrainConfig(epochs=epochs, optimizer="sgd", lr=0.05, scheduler="onecycle")
    if kind == "cnn":
        net, transforms = (
            create_model("cnn", 10),
            {
                "train_transform": build_train_transform(32, MEAN, STD),
                "eval_transform": build_eval_transform(32, MEAN, STD),
            },
        )
        precision = resolve_precision("auto", "cpu")
    else:
        net, transforms, precision = torch.nn.Linear(512, 10), {}, "32"
    cls = old.ClassifierModule if variant == "old" else new_module.ClassifierModule
    (xt, yt), (xv, yv) = data[kind]
    tl = DataLoader(TensorDataset(xt, yt), batch_size=64, shuffle=True, drop_last=True)
    vl = DataLoader(TensorDataset(xv, yv), batch_size=256)
    module = cls(net, 10, train, len(tl), create_loss(), **transforms)
    if variant == "none":
        module.tallies = {stage: _NoTally() for stage in module.tallies}
    clock = EpochTimer()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, precision=precision, max_epochs=epochs, logger=False,
        callbacks=[LogTrainEpoch(), clock], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, tl, vl)
    return min(clock.step_ms[1:]), min(clock.epoch_s[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-rev", default=OLD_REV)
    args = parser.parse_args()
    n, epochs = (640, 2) if args.quick else (2000, 3)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # the per-fit banners
    old = load_old_module(args.old_rev)
    data = {"cnn": (images(n, 0), images(n // 4, 1)), "head": (features(n, 0), features(n // 4, 1))}
    best: dict[tuple[str, str, str], float] = {}
    for _ in range(args.rounds):
        for kind in ("cnn", "head"):
            for variant in ("old", "new", "none"):
                for what, value in zip(
                    ("ms", "s"), fit_once(kind, variant, old, data, epochs), strict=True
                ):
                    key = (kind, variant, what)
                    best[key] = min(best.get(key, value), value)
    rows, payload = [], {}
    for kind in ("cnn", "head"):
        ms = {v: best[(kind, v, "ms")] for v in ("old", "new", "none")}
        s = {v: best[(kind, v, "s")] for v in ("old", "new", "none")}
        rows.append([
            kind, ms["old"], ms["new"], ms["none"], ratio(ms["old"], ms["new"]),
            ms["old"] - ms["none"], ms["new"] - ms["none"], s["old"], s["new"],
            ratio(s["old"], s["new"]),
        ])  # fmt: skip
        payload[kind] = {"ms_per_step": ms, "epoch_s": s}
    print(f"{n} images, batch 64, best of {args.rounds} rounds x {epochs - 1} timed epochs")
    print(table(
        ["workload", "old ms/step", "new ms/step", "none ms/step", "old/new",
         "old logging ms", "new logging ms", "old epoch s", "new epoch s", "old/new epoch"],
        rows,
    ))  # fmt: skip
    save_result("steplog", {"images": n, "rounds": args.rounds, **payload})


if __name__ == "__main__":
    main()
