"""Scale benchmark: peak memory and images/s of a short run on 2k vs 40k images, one run.

Each training runs as its own process (``--child``) that samples ``/proc/self/status`` every
50 ms and reports, per stage of ``fit`` (imports, prepare = scan + split + decode + model,
train, finalize = evaluation + report), the peak of:

- ``rss``: resident memory as ``ps`` shows it (anonymous + file-backed pages);
- ``anon``: anonymous memory, what the process itself allocated (tensors, Python objects);
- ``file``: file-backed resident pages: the memory-mapped image cache and shared libraries.
  These are page cache the kernel can drop and re-read at any time, shared by every process
  mapping the same file.

Memory that "grows with the dataset" is anonymous; pages of the memory-mapped cache show as
``file`` and cost nothing the kernel cannot take back. images/s is the training speed of the
last logged (possibly partial) epoch, from ``metrics.csv``.

Usage: python bench/bench_scale.py [--sizes 2000,40000] [--side 32] [--max-time 10] [--quick]
       [--baseline-src OTHER/src]  (measure another cnnlab tree side by side)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common import OUT_DIR, REPO_ROOT, machine_info, run_json_subprocess, save_result, table

FIELDS = {"rss": "VmRSS", "anon": "RssAnon", "file": "RssFile"}


def make_jpegs(n: int, side: int, classes: int = 10, seed: int = 0) -> Path:
    """Write (once) ``n`` small JPEGs as ``root/<class>/*.jpg``: a class colour plus noise."""
    root = OUT_DIR / "data" / f"scale-{n}-{side}px-s{seed}-v1"
    if (root / ".complete").is_file():
        return root
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, (classes, 3))
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = i % classes
        noise = rng.normal(0, 40, (side, side, 3))
        arr = np.clip(colours[c] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(root / f"class_{c}" / f"{i:06d}.jpg", quality=85)
    (root / ".complete").write_text("ok")
    return root


def _status_kb() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS.values():
            values[key] = int(rest.split()[0])
    return values


class Sampler(threading.Thread):
    """Peak rss/anon/file (MB) per named stage, sampled every 50 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stage = "imports"
        self.peaks: dict[str, dict[str, float]] = {}
        self.running = True

    def sample(self) -> None:
        kb = _status_kb()
        peak = self.peaks.setdefault(self.stage, dict.fromkeys(FIELDS, 0.0))
        for name, key in FIELDS.items():
            peak[name] = max(peak[name], kb.get(key, 0) / 1024)

    def run(self) -> None:
        while self.running:
            self.sample()
            time.sleep(0.05)


def _staged(sampler: Sampler, module: Any, name: str, stage: str) -> None:
    """Wrap ``module.name`` so the sampler knows which stage of ``fit`` is running."""
    original = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sampler.sample()
        sampler.stage = stage
        try:
            return original(*args, **kwargs)
        finally:
            sampler.sample()

    setattr(module, name, wrapper)


def warm(root: str, img_size: int) -> None:
    """Scan and decode once (the timed run then starts from the cache, as a study's runs do)."""
    from cnnlab.api import make_config
    from cnnlab.engine.setup import prepare

    prepare(make_config(root, values={"data.img_size": img_size}))
    print("{}")


def child(root: str, img_size: int, max_time: float, runs: str) -> None:
    """One short training run in this process; prints its figures as one JSON line."""
    sampler = Sampler()
    sampler.start()
    import cnnlab.engine.finalize as finalize
    import cnnlab.engine.fit as fit
    import cnnlab.engine.setup as setup
    from cnnlab import api

    _staged(sampler, setup, "prepare", "prepare")
    _staged(sampler, fit, "_train", "train")
    _staged(sampler, finalize, "finalize", "finalize")
    start = time.perf_counter()
    run = api.train(
        root, runs_dir=runs, epochs=100, img_size=img_size,
        train__max_time=max_time, track__backend="none", eval__explain=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    sampler.running = False
    sampler.sample()
    rows = list(csv.DictReader((run.path / "metrics.csv").open()))
    print(
        json.dumps(
            {
                "peaks_mb": sampler.peaks,
                "images_per_s": float(rows[-1]["images_per_s"]) if rows else None,
                "train_time_s": run.summary["train_time_s"],
                "fit_wall_s": wall,
            }
        )
    )


def measure(
    root: Path, side: int, max_time: float, cache: str, warm: bool, src: Path
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as runs:
        argv = [sys.executable, __file__, "--child", str(root), "--side", str(side)]
        argv += ["--max-time", str(max_time), "--runs", runs] + (["--warm"] if warm else [])
        env = {"CNNLAB_CACHE": cache, "PYTHONPATH": str(src)}
        return run_json_subprocess(argv, timeout=3600, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,40000", help="image counts, comma-separated")
    parser.add_argument("--side", type=int, default=32, help="image and model input side, px")
    parser.add_argument("--max-time", type=float, default=10.0, help="train.max_time, s")
    parser.add_argument("--quick", action="store_true", help="500 vs 5000 images, 5 s")
    parser.add_argument("--child")
    parser.add_argument("--runs")
    parser.add_argument("--warm", action="store_true")
    parser.add_argument(
        "--baseline-src", type=Path, help="another cnnlab src/ folder, measured side by side"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.max_time = "500,5000", 5.0
    if args.child and args.warm:
        warm(args.child, args.side)
        return
    if args.child:
        child(args.child, args.side, args.max_time, args.runs)
        return
    cache = tempfile.mkdtemp(prefix="cnnlab-bench-scale-")
    results: dict[str, Any] = {}
    try:
        trees = {"": REPO_ROOT / "src"}
        if args.baseline_src:
            trees = {"baseline ": args.baseline_src, "this tree ": REPO_ROOT / "src"}
        for n in (int(v) for v in args.sizes.split(",")):
            root = make_jpegs(n, args.side)
            for label, src in trees.items():
                # scan + decode untimed first: the timed run starts from the cache
                measure(root, args.side, args.max_time, cache, True, src)
                results[f"{label}{n}"] = measure(root, args.side, args.max_time, cache, False, src)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for n, r in results.items():
        peaks = r.get("peaks_mb", {})
        for stage, p in peaks.items():
            rows.append([n, stage, p["rss"], p["anon"], p["file"]])
        rows.append([n, "images/s", r.get("images_per_s"), r.get("error", ""), ""])
    print(f"side {args.side} px, train.max_time={args.max_time} s, load {os.getloadavg()[0]:.1f}")
    print(table(["images", "stage", "peak rss MB", "peak anon MB", "peak file MB"], rows))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    save_result("scale", {"args": settings, "results": results, "machine": machine_info()})


if __name__ == "__main__":
    main()
