"""Where a GPU training step's time goes: batch size x cuDNN autotuning, and a kernel profile.

In one process (the imports and CUDA start-up paid once, by an untimed warm-up run), one
epoch of the default ``cnn`` per variant through ``cnnlab.train`` with its defaults, on the
folder ``bench_scale.make_jpegs`` generates:

- ``batch`` x ``cudnn.benchmark`` off/on (Lightning takes the session's setting);
- images/s of the epoch (``metrics.csv``) and the time per step;
- then ``torch.profiler`` over one more run at the largest batch: the top operators by GPU
  time and by CPU time.

Usage: python bench/bench_gpu_step.py [--n 10000] [--side 64] [--batches 64,1024]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import tempfile
from pathlib import Path

import torch

from bench_scale import make_jpegs
from common import REPO_ROOT, table

sys.path.insert(0, str(REPO_ROOT / "src"))
import cnnlab


def epoch(data: Path, batch: int, side: int, accelerator: str) -> tuple[float, float]:
    """One epoch; (images/s, seconds per step)."""
    with tempfile.TemporaryDirectory() as runs:
        run = cnnlab.train(
            data, runs_dir=runs, epochs=1, img_size=side, batch_size=batch,
            train__min_steps=0, train__accelerator=accelerator, model__pretrained=False,
            eval__explain=False, track__backend="none",
        )  # fmt: skip
        assert run is not None
        with open(run.path / "metrics.csv", newline="") as fh:
            row = list(csv.DictReader(fh))[-1]
        steps = math.ceil(run.summary["images"]["train"] / batch)
        return float(row["images_per_s"]), float(row["epoch_time_s"]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--batches", default="64,1024")
    parser.add_argument("--accelerator", default="gpu")
    args = parser.parse_args()
    os.environ.setdefault("CNNLAB_TRACK", "none")
    data = make_jpegs(args.n, args.side)
    batches = [int(b) for b in args.batches.split(",")]
    epoch(data, batches[0], args.side, args.accelerator)  # warm-up: imports, CUDA, cache
    rows = []
    for batch in batches:
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            speed, step = epoch(data, batch, args.side, args.accelerator)
            rows.append([batch, bench, round(speed), round(step * 1000, 1)])
            print(rows[-1], file=sys.stderr)
    print(table(["batch", "cudnn.benchmark", "images/s", "ms/step"], rows))
    torch.backends.cudnn.benchmark = False
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        epoch(data, batches[-1], args.side, args.accelerator)
    averages = prof.key_averages()
    for key in ("self_cuda_time_total", "self_cpu_time_total")[not torch.cuda.is_available() :]:
        print(averages.table(sort_by=key, row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main()
