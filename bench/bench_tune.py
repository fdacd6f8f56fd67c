"""cnnlab tune: the same search with and without pruning, and heads on cached features.

Part 1 runs one search twice on the 10-class shapes set, TPE with the same seed, once with the
median pruner and once with none: the best validation macro F1 reached and the epochs trained
in total (issue 13's goal: within 1 point of the unpruned best at <= 0.5x its epochs). Part 2
runs the ``head`` space (EfficientNet-Lite0 frozen, features cached once) and counts trials per
minute (goal: >= 20 on 2 cores), over the whole command and per trial (median trial time).
Each side is its own ``cnnlab tune`` process with its own empty ``CNNLAB_CACHE``.

Usage: python bench/bench_tune.py [--quick] [--head-only]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OUT_DIR, make_shapes_dataset, ratio, save_result, table


def tune(data: Path, out: Path, args: list[str], cache: Path) -> dict[str, Any]:
    """Run one ``cnnlab tune`` process; its wall time and its trials.csv figures."""
    env = {**os.environ, "CNNLAB_CACHE": str(cache), "CNNLAB_OFFLINE": "1",
           "CNNLAB_TRACK": "none"}  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "--quiet", "tune", str(data), "--out", str(out), *args],
        capture_output=True, text=True, env=env, timeout=6 * 3600,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"cnnlab tune failed: {proc.stderr[-2000:]}")
    with (out / "trials.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    done = [float(r["val/macro_f1"]) for r in rows if r["state"] == "COMPLETE"]
    durations = [float(r["duration_s"]) for r in rows if r["duration_s"]]
    return {
        "wall_s": wall,
        "trials": len(rows),
        "pruned": sum(r["state"] == "PRUNED" for r in rows),
        "epochs": sum(int(r["epochs"] or 0) for r in rows),
        "best": max(done) if done else None,
        "median_trial_s": statistics.median(durations) if durations else None,
    }


def pruning_part(data: Path, work: Path, trials: int, epochs: int) -> dict[str, Any]:
    common = ["--space", "cnn", "--trials", str(trials), "--epochs", str(epochs),
              "--sampler", "tpe", "eval.worst_mistakes=0"]  # fmt: skip
    sides = {}
    for pruner in ("none", "median"):
        sides[pruner] = tune(data, work / f"cnn-{pruner}", [*common, "--pruner", pruner],
                             work / f"cache-{pruner}")  # fmt: skip
    return sides


def head_part(data: Path, work: Path, trials: int, epochs: int) -> dict[str, Any]:
    args = ["--space", "head", "--trials", str(trials), "--epochs", str(epochs),
            "--pruner", "none", "eval.worst_mistakes=0"]  # fmt: skip
    side = tune(data, work / "head", args, work / "cache-head")
    side["per_min_whole"] = 60 * side["trials"] / side["wall_s"]
    side["per_min_trial"] = 60 / side["median_trial_s"] if side["median_trial_s"] else None
    return side


def print_head(head: dict[str, Any]) -> None:
    print(f"space head: {head['trials']} trials in {head['wall_s']:.0f} s: "
          f"{head['per_min_whole']:.1f} trials/min whole, "
          f"{head['per_min_trial'] or 0:.1f}/min from the median trial "
          f"({head['median_trial_s']:.1f} s)")  # fmt: skip


def head_only(trials: int, per_class: tuple[int, int]) -> dict[str, Any]:
    """Part 2 alone (``--head-only``): the head space's trials per minute."""
    data = make_shapes_dataset(train_per_class=per_class[0], test_per_class=per_class[1])
    work = Path(tempfile.mkdtemp(prefix="bench-tune-", dir=OUT_DIR))
    try:
        head = head_part(data, work, trials, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_head(head)
    payload = {"trials": trials, "images": sum(per_class) * 10, "head": head}
    save_result("tune-head", payload)
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 trials, 3 epochs, 400 images")
    parser.add_argument("--head-only", action="store_true", help="only the head-space part")
    args = parser.parse_args(argv)
    if args.head_only:
        return head_only(*((8, (30, 10)) if args.quick else (30, (150, 50))))
    trials, epochs = (8, 3) if args.quick else (30, 5)
    per_class = (30, 10) if args.quick else (150, 50)
    data = make_shapes_dataset(train_per_class=per_class[0], test_per_class=per_class[1])
    work = Path(tempfile.mkdtemp(prefix="bench-tune-", dir=OUT_DIR))
    try:
        sides = pruning_part(data, work, trials, epochs)
        head = head_part(data, work, trials, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    none, median = sides["none"], sides["median"]
    rows = [
        [f"{name} pruner", s["best"], s["epochs"], ratio(s["epochs"], none["epochs"]),
         s["pruned"], s["wall_s"]]
        for name, s in (("no", none), ("median", median))
    ]  # fmt: skip
    print(f"space cnn: {trials} trials x {epochs} epochs, {sum(per_class) * 10} images, 32 px")
    print(table(["search", "best val macro F1", "epochs", "x unpruned", "pruned", "wall s"], rows))
    print_head(head)
    gap = None if none["best"] is None or median["best"] is None else none["best"] - median["best"]
    payload = {
        "trials": trials, "epochs": epochs, "images": sum(per_class) * 10,
        "unpruned": none, "median": median, "best_gap_points": None if gap is None else 100 * gap,
        "epochs_ratio": ratio(median["epochs"], none["epochs"]), "head": head,
    }  # fmt: skip
    save_result("tune", payload)
    return payload


if __name__ == "__main__":
    main()
