"""``cnnlab data issues`` on 2,000 generated 32-px images, 5% of them in a wrong class folder.

Each row is the whole command as a user runs it (``python -m cnnlab data issues``, its own
process, imports included), scored against the known moves: precision and recall of the
flagged label issues, wall time and CPU time. The first row starts from an empty cache (scan, decode
and the backbone's feature pass included); the K = 3/5/10 rows reuse the cached features, as
a second run on the same data does. ``--cnn`` adds the from-scratch ``cnn`` trained per fold.

Usage: python bench/bench_issues.py [--quick] [--cnn]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OUT_DIR, SHAPES, save_result, shapes_image, table, write_mislabelled

MOVED_FRACTION = 0.05


def noisy_dataset(per_class: int, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """Write (once) ``<class>/*.png`` with 5% of the images in a wrong class folder.

    Returns the root and the moved files (path -> true class), also kept beside the folder.
    """
    root = OUT_DIR / "data" / f"noisy-shapes32-{per_class}-s{seed}-v1"
    record = root.parent / f"{root.name}.moved.json"
    if record.is_file():
        return root, json.loads(record.read_text())
    moved = write_mislabelled(root, SHAPES, per_class, shapes_image, MOVED_FRACTION, seed=seed)
    record.write_text(json.dumps(moved))
    return root, moved


def run_issues(root: Path, cache: Path, folds: int, extra: list[str]) -> dict[str, Any]:
    """The CLI in its own process; returns wall time and the flagged label issues."""
    out = Path(tempfile.mkdtemp(prefix="issues-out-"))
    argv = [sys.executable, "-m", "cnnlab", "--quiet", "data", "issues", str(root),
            "--folds", str(folds), "--out", str(out), *extra]  # fmt: skip
    env = dict(os.environ, CNNLAB_CACHE=str(cache), CNNLAB_OFFLINE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds (user + system) of the command and its workers: on a machine shared with
    # other work the wall time stretches, the CPU time much less.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:], "wall_s": wall, "cpu_s": cpu}
    with open(out / "issues.csv", newline="", encoding="utf-8") as fh:
        flagged = {r["path"] for r in csv.DictReader(fh) if r["kind"] == "label"}
    return {"wall_s": wall, "cpu_s": cpu, "flagged": sorted(flagged)}


def score(flagged: set[str], moved: set[str]) -> tuple[float, float]:
    hits = len(flagged & moved)
    return hits / max(1, len(flagged)), hits / max(1, len(moved))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 images instead of 2,000")
    parser.add_argument("--cnn", action="store_true", help="also: cnn trained per fold (K=5)")
    args = parser.parse_args()
    root, moved = noisy_dataset(50 if args.quick else 200)
    cache = Path(tempfile.mkdtemp(prefix="issues-cache-"))  # empty: the first row is cold
    plan = [("default, cold cache", 5, [])]
    plan += [("default, cached features", k, []) for k in (3, 5, 10)]
    if args.cnn:
        plan.append(("cnn from scratch, 10 epochs", 5, ["--model", "cnn", "--epochs", "10"]))
    rows, results = [], []
    for name, k, extra in plan:
        res = run_issues(root, cache, k, extra)
        if "error" in res:
            print(f"{name} K={k} failed:\n{res['error']}", flush=True)
            results.append({"name": name, "folds": k, **res})
            continue
        precision, recall = score(set(res["flagged"]), set(moved))
        rows.append([name, k, len(res["flagged"]), precision, recall, res["wall_s"], res["cpu_s"]])
        results.append(
            {"name": name, "folds": k, "flagged": len(res["flagged"]), "precision": precision,
             "recall": recall, "wall_s": res["wall_s"], "cpu_s": res["cpu_s"]}
        )  # fmt: skip
        print(f"{name} K={k}: P {precision:.3f} R {recall:.3f} {res['wall_s']:.1f} s", flush=True)
    images = sum(1 for _ in root.glob("*/*.png"))
    print(f"\n{images} images at 32 px, {len(moved)} moved to a wrong class")
    print(table(["model", "K", "flagged", "precision", "recall", "wall s", "cpu s"], rows))
    load = os.getloadavg()[0]  # other work on the machine stretches the wall times
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores")
    save_result("issues", {"images": images, "moved": len(moved), "rows": results})


if __name__ == "__main__":
    main()
