"""A study vs the same runs as separate ``cnnlab train`` processes (issue 12's speed goal).

A 4-cell x 3-seed study on the 2,000-image 32-px shapes set, timed whole as one
``cnnlab study`` process (and again with ``--workers 2``), against the same 12 runs as 12
``cnnlab train`` processes one after another, each with the study's split and seed. Every side
starts from an empty cache of its own (``CNNLAB_CACHE``), so none profits from another's scan,
decoded images or features. Goal: the study costs at most 0.8x the separate runs.

Usage: python bench/bench_study.py [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OUT_DIR, make_shapes_dataset, ratio, save_result, table

VARY = ["train.lr=0.05,0.1", "model.cnn.filters=[16,32,64],[32,64,128]"]
CELLS = [  # the same 4 cells as --vary makes them, as KEY=VALUE for cnnlab train
    ["train.lr=0.05", "model.cnn.filters=[16,32,64]"],
    ["train.lr=0.05", "model.cnn.filters=[32,64,128]"],
    ["train.lr=0.1", "model.cnn.filters=[16,32,64]"],
    ["train.lr=0.1", "model.cnn.filters=[32,64,128]"],
]


def cnnlab(args: list[str], cache: Path, timeout: float = 3600) -> float:
    """Run one ``cnnlab`` command as its own process; its wall time (s)."""
    env = {**os.environ, "CNNLAB_CACHE": str(cache), "CNNLAB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "--quiet", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"cnnlab {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def mean_test_accuracy(results: Path) -> float:
    with results.open(newline="") as fh:
        accs = [float(r["test_accuracy"]) for r in csv.DictReader(fh) if r["status"] == "done"]
    return sum(accs) / len(accs)


def study_side(data: Path, work: Path, common: list[str], seeds: int, workers: int) -> dict:
    out, cache = work / f"study-w{workers}", work / f"cache-study-w{workers}"
    args = ["study", str(data), *[a for v in VARY for a in ("--vary", v)], "--seeds", str(seeds),
            "--out", str(out), "--workers", str(workers), *common]  # fmt: skip
    wall = cnnlab(args, cache)
    return {"wall_s": wall, "test_acc": mean_test_accuracy(out / "results.csv"), "out": out}


def train_side(data: Path, work: Path, common: list[str], seeds: list[int], split: Path) -> dict:
    """The same runs, one ``cnnlab train`` process each, on the study's split."""
    cache, runs = work / "cache-train", work / "train-runs"
    wall, accs = 0.0, []
    for seed in seeds:
        for i, cell in enumerate(CELLS):
            name = f"c{i + 1}-seed{seed}"
            args = ["train", str(data), *cell, *common, f"train.seed={seed}",
                    f"data.split_file={split}", f"name={name}", f"runs_dir={runs}"]  # fmt: skip
            wall += cnnlab(args, cache)
            summary = (runs / name / "summary.json").read_text()
            accs.append(json.loads(summary)["metrics"]["test"]["accuracy"])
    return {"wall_s": wall, "test_acc": sum(accs) / len(accs)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 1 epoch, 400 images")
    args = parser.parse_args(argv)
    seeds = 2 if args.quick else 3
    per_class = (30, 10) if args.quick else (150, 50)  # train/test per class: 2,000 images
    epochs = 1 if args.quick else 3
    data = make_shapes_dataset(train_per_class=per_class[0], test_per_class=per_class[1])
    common = [f"train.epochs={epochs}", "model.name=cnn"]
    work = Path(tempfile.mkdtemp(prefix="bench-study-", dir=OUT_DIR))
    try:
        one = study_side(data, work, common, seeds, workers=1)
        seed_list = [42 + i for i in range(seeds)]
        separate = train_side(data, work, common, seed_list, one["out"] / "split.csv")
        two = study_side(data, work, common, seeds, workers=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        [f"{len(CELLS) * seeds} x cnnlab train (separate processes)", separate["wall_s"], 1.0,
         separate["test_acc"]],
        ["cnnlab study (one process)", one["wall_s"], ratio(one["wall_s"], separate["wall_s"]),
         one["test_acc"]],
        ["cnnlab study --workers 2", two["wall_s"], ratio(two["wall_s"], separate["wall_s"]),
         two["test_acc"]],
    ]  # fmt: skip
    print(f"{len(CELLS)} cells x {seeds} seeds, {sum(per_class) * 10} images, {epochs} epochs")
    print(table(["how", "wall s", "x separate", "mean test acc"], rows))
    payload = {
        "cells": len(CELLS), "seeds": seeds, "epochs": epochs, "images": sum(per_class) * 10,
        "separate_s": separate["wall_s"], "study_s": one["wall_s"], "study_w2_s": two["wall_s"],
        "ratio_study": ratio(one["wall_s"], separate["wall_s"]),
        "ratio_study_w2": ratio(two["wall_s"], separate["wall_s"]),
        "test_acc": {"separate": separate["test_acc"], "study": one["test_acc"],
                     "study_w2": two["test_acc"]},
    }  # fmt: skip
    save_result("study", payload)
    return payload


if __name__ == "__main__":
    main()
