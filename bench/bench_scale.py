"""Scale benchmark: memory, scan/decode time and images/s on a small vs a large folder.

For each size, two processes (``--child``) that sample ``/proc/self/status`` every 50 ms:

1. **cold**: scan + decode a new folder into an empty cache (``prepare``: the parallel scan,
   split, audit and the decoded cache), timed per stage (``scan``, ``decode``);
2. **train**: a run from that cache, either ``train.max_time`` seconds (default) or one whole
   epoch (``--epoch``), timed and sampled per stage of ``fit`` (prepare = scan check + split
   + cache + model, train, finalize = evaluation + report; ``other`` = imports and the rest).

Per stage the peak of:

- ``rss``: resident memory as ``ps`` shows it (anonymous + file-backed pages);
- ``anon``: anonymous memory, what the process itself allocated (tensors, Python objects);
- ``file``: file-backed resident pages: the memory-mapped image cache and shared libraries.
  These are page cache the kernel can drop and re-read at any time, shared by every process
  mapping the same file.

Memory that "grows with the dataset" is anonymous; pages of the memory-mapped cache show as
``file`` and cost nothing the kernel cannot take back. images/s is the training speed of the
last logged (possibly partial) epoch, from ``metrics.csv``. Folders are generated once under
``bench/out/data`` (JPEGs, a class colour plus noise; 100,000 of 32 px take about 0.1 GB).

Usage: python bench/bench_scale.py [--sizes 2000,40000] [--side 32] [--max-time 10] [--epoch]
       [--quick] [--baseline-src OTHER/src]  (measure another cnnlab tree side by side)
       e.g. the issue's 100k case: --sizes 2000,100000 --epoch
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
        if i and i % 20000 == 0:
            print(f"generated {i}/{n} images", file=sys.stderr)
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
        self.stage = "other"  # imports, and whatever runs outside the named stages
        self.peaks: dict[str, dict[str, float]] = {}
        self.seconds: dict[str, float] = {}  # wall time per stage (wrapped calls only)
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
        outer, sampler.stage = sampler.stage, stage
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            sampler.seconds[stage] = sampler.seconds.get(stage, 0.0) + time.perf_counter() - start
            sampler.sample()
            sampler.stage = outer

    setattr(module, name, wrapper)


def cold(root: str, img_size: int) -> None:
    """Scan and decode a folder into an empty cache; prints peaks and seconds per stage.

    The timed training run then starts from the cache, as a study's later runs do.
    """
    sampler = Sampler()
    sampler.start()
    import cnnlab.data.check as check
    import cnnlab.engine.databundle as databundle
    from cnnlab.api import make_config
    from cnnlab.engine.setup import prepare

    _staged(sampler, check, "check_dataset", "scan")  # scan + split + audit
    _staged(sampler, databundle, "_decode", "decode")  # the decoded, memory-mapped cache
    start = time.perf_counter()
    data, _ = prepare(make_config(root, values={"data.img_size": img_size}))
    wall = time.perf_counter() - start
    sampler.running = False
    sampler.sample()
    images = len(data.paths)
    print(json.dumps({"peaks_mb": sampler.peaks, "seconds": sampler.seconds,
                      "prepare_wall_s": wall, "images": images}))  # fmt: skip


def child(root: str, img_size: int, max_time: float | None, runs: str) -> None:
    """One training run in this process (``max_time`` seconds, or one epoch when None);
    prints its figures as one JSON line."""
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
        root, runs_dir=runs, epochs=100 if max_time else 1, img_size=img_size,
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
                "seconds": sampler.seconds,
                "images_per_s": float(rows[-1]["images_per_s"]) if rows else None,
                "epoch_time_s": float(rows[-1]["epoch_time_s"]) if rows else None,
                "train_time_s": run.summary["train_time_s"],
                "fit_wall_s": wall,
            }
        )
    )


def measure(
    root: Path, side: int, max_time: float | None, cache: str, cold: bool, src: Path
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as runs:
        argv = [sys.executable, __file__, "--child", str(root), "--side", str(side)]
        argv += ["--runs", runs] + (["--cold"] if cold else [])
        argv += ["--max-time", str(max_time)] if max_time else ["--epoch"]
        env = {"CNNLAB_CACHE": cache, "PYTHONPATH": str(src)}
        return run_json_subprocess(argv, timeout=4 * 3600, env=env)


def _rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for n, r in results.items():
        if "error" in r:
            rows.append([n, "error", r["error"], "", "", ""])
            continue
        for stage, p in r.get("peaks_mb", {}).items():
            secs = r.get("seconds", {}).get(stage)
            rows.append([n, stage, p["rss"], p["anon"], p["file"], secs])
        if "images_per_s" in r:
            rows.append([n, "train images/s", r["images_per_s"], "", "", r["epoch_time_s"]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,40000", help="image counts, comma-separated")
    parser.add_argument("--side", type=int, default=32, help="image and model input side, px")
    parser.add_argument("--max-time", type=float, default=10.0, help="train.max_time, s")
    parser.add_argument("--epoch", action="store_true", help="train one whole epoch instead")
    parser.add_argument("--quick", action="store_true", help="500 vs 5000 images, 5 s")
    parser.add_argument("--child")
    parser.add_argument("--runs")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument(
        "--baseline-src", type=Path, help="another cnnlab src/ folder, measured side by side"
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.max_time = "500,5000", 5.0
    max_time = None if args.epoch else args.max_time
    if args.child:
        if args.cold:
            cold(args.child, args.side)
        else:
            child(args.child, args.side, max_time, args.runs)
        return
    results: dict[str, Any] = {}
    trees = {"": REPO_ROOT / "src"}
    if args.baseline_src:
        trees = {"baseline ": args.baseline_src, "this tree ": REPO_ROOT / "src"}
    for n in (int(v) for v in args.sizes.split(",")):
        root = make_jpegs(n, args.side)
        for label, src in trees.items():
            cache = tempfile.mkdtemp(prefix="cnnlab-bench-scale-")  # cold: an empty cache
            try:
                results[f"{label}{n} cold"] = measure(root, args.side, None, cache, True, src)
                results[f"{label}{n}"] = measure(root, args.side, max_time, cache, False, src)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    what = "one epoch" if args.epoch else f"train.max_time={args.max_time} s"
    print(f"side {args.side} px, {what}, load {os.getloadavg()[0]:.1f}")
    head = ["images", "stage", "peak rss MB", "peak anon MB", "peak file MB", "seconds"]
    print(table(head, _rows(results)))
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    save_result("scale", {"args": settings, "results": results, "machine": machine_info()})


if __name__ == "__main__":
    main()
