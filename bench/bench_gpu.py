"""GPU vs CPU on one machine: training images/s and a run's wall time, side by side.

For each model, the same short run twice on the same generated folder and the same decoded
cache, once with ``train.accelerator=gpu`` and once with ``cpu`` (every core of the machine),
each through the real CLI with every other setting at its default (precision, channels_last,
batch size, the final evaluation and the report):

- ``images/s``: training speed of the last logged epoch (``metrics.csv``);
- ``train s``: the run's training time (``summary.json``), capped by ``train.max_time``;
- ``wall s``: the whole command, interpreter start, evaluation and report included.

The folder (``bench_scale.make_jpegs``: a class colour plus noise) is generated once under
``bench/out/data`` and cached by a first, untimed scan. Models are built without pretrained
weights (a GPU machine here has no internet); speed does not depend on the weights.

Usage: python bench/bench_gpu.py [--n 20000] [--side 64] [--models cnn,resnet18]
       [--max-time 20] [--accelerators gpu,cpu]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_scale import make_jpegs
from common import REPO_ROOT, machine_info, ratio, save_result, table


def _cnnlab(*args: str, env: dict[str, str]) -> float:
    """Run the CLI; its wall time in seconds (raises with the output's tail on failure)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "-q", *args], capture_output=True, text=True, env=env
    )
    if out.returncode:
        raise RuntimeError(f"cnnlab {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return time.perf_counter() - start


def one_run(data: Path, model: str, accel: str, args: argparse.Namespace, env: dict) -> dict:
    """One short run; its speed, times and resolved precision."""
    with tempfile.TemporaryDirectory() as runs:
        wall = _cnnlab(
            "train", str(data), "--model", model, "--img-size", str(args.side),
            "--epochs", "1", "--runs-dir", runs, f"train.accelerator={accel}",
            f"train.max_time={args.max_time}", "model.pretrained=false",
            env=env,
        )  # fmt: skip
        (run,) = Path(runs).iterdir()
        summary = json.loads((run / "summary.json").read_text())
        with open(run / "metrics.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r.get("images_per_s")]
    return {
        "model": model,
        "accelerator": summary.get("accelerator", accel),
        "precision": summary["precision"],
        "images_per_s": float(rows[-1]["images_per_s"]) if rows else None,
        "train_s": summary["train_time_s"],
        "wall_s": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="images in the folder")
    parser.add_argument("--side", type=int, default=64, help="image and model input side, px")
    parser.add_argument("--models", default="cnn,resnet18")
    parser.add_argument("--max-time", type=float, default=20.0, help="train.max_time, s")
    parser.add_argument("--accelerators", default="gpu,cpu")
    args = parser.parse_args()
    data = make_jpegs(args.n, args.side)
    path = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, CNNLAB_TRACK="none", PYTHONPATH=path)
    env.setdefault("CNNLAB_CACHE", str(REPO_ROOT / "bench" / "out" / "cache-gpu"))
    _cnnlab("data", "inspect", str(data), "--out", tempfile.mkdtemp(), env=env)  # warm cache
    results: list[dict[str, Any]] = []
    for model in args.models.split(","):
        for accel in args.accelerators.split(","):
            results.append(one_run(data, model, accel, args, env))
            print(json.dumps(results[-1]), file=sys.stderr)
    rows = []
    for r in results:
        cpu = next(
            (c for c in results if c["model"] == r["model"] and c["accelerator"] == "cpu"), None
        )
        speedup = ratio(r["images_per_s"], cpu["images_per_s"]) if cpu else None
        rows.append([r["model"], r["accelerator"], r["precision"], r["images_per_s"],
                     speedup, r["train_s"], r["wall_s"]])  # fmt: skip
    headers = ["model", "device", "precision", "images/s", "x cpu", "train s", "wall s"]
    print(f"{args.n} images of {args.side} px, train.max_time={args.max_time}")
    print(table(headers, rows))
    path = save_result("gpu", {"args": vars(args), "results": results})
    print(f"saved {path}; machine: {json.dumps(machine_info())}")


if __name__ == "__main__":
    main()
