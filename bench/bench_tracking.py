"""What MLflow tracking costs a default run: `cnnlab train` with tracking on vs off.

Each run is its own `cnnlab train DATA` process with every default (a CNN from scratch, 15
epochs) on the generated 10-class 32-px set; the variants alternate, repeated, so a busy
machine slows each about alike:

- ``off``: ``--track none``;
- ``on, store exists``: the default, logging into a runs folder whose ``mlflow.db`` an earlier
  run created (every run after a user's first);
- ``on, new store``: the default into an empty runs folder (a user's very first run, which
  also creates the MLflow tables).

``wall`` is what the user waits for (the command's process). Logging happens in a separate,
low-priority process that goes on after the command returns; ``logged`` is when the run is
FINISHED in the store with its artifacts, measured from the command's start. On a shared,
busy machine wall times are noisy, so the CPU time is measured too, which load barely moves:
the untracked training process's, and the tracking process's for one finished run (into a
new store, and into an existing one).
Goal (issue 14): a default run with tracking costs at most 5% more wall time than without.

Usage: python bench/bench_tracking.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from common import OUT_DIR, REPO_ROOT, make_shapes_dataset, ratio, save_result, table

VARIANTS = ("off", "on, store exists", "on, new store")
FOLDERS = {"off": "off", "on, store exists": "existing", "on, new store": "new"}
GOAL = 1.05  # tracked wall time / untracked wall time


def _store_finished(db: Path, name: str) -> bool:
    """The run called ``name`` in an MLflow SQLite store is FINISHED with its weights logged.

    By name, not "the newest run": the tracker may create this run after the command returns,
    when the newest run in an existing store is still the previous repeat's."""
    if not db.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            row = con.execute(
                "SELECT status, artifact_uri FROM runs WHERE name = ?", (name,)
            ).fetchone()
    except sqlite3.Error:  # tables not created yet, or locked for a moment
        return False
    if not row or row[0] != "FINISHED":
        return False
    folder = Path(unquote(urlparse(row[1]).path))
    return (folder / "model.safetensors").is_file()


def _children_cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def tracker_cpu_s(run_dir: Path, runs_dir: Path) -> float:
    """CPU seconds the tracking process spends logging one finished run into ``runs_dir``."""
    from cnnlab.config import TrackConfig
    from cnnlab.track.target import resolve_target

    target = resolve_target(TrackConfig(backend="mlflow"), runs_dir)
    assert target is not None
    command = {"seq": 1, "op": "sync", "run_dir": str(run_dir), "end": "FINISHED"}
    before = _children_cpu_s()
    subprocess.run(
        [sys.executable, "-m", "cnnlab.track.agent", target.to_json()],
        input=json.dumps(command) + "\n", capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    return _children_cpu_s() - before


def run_once(data: Path, runs_dir: Path, variant: str, epochs: int | None) -> dict[str, Any]:
    """One `cnnlab train` process; for tracked runs, also wait until the store has it all."""
    argv = [sys.executable, "-m", "cnnlab", "train", str(data), "--runs-dir", str(runs_dir)]
    argv += ["--quiet", "--seed", "0"] + (["--epochs", str(epochs)] if epochs else [])
    if variant == "off":
        argv += ["--track", "none"]
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}
    env["CNNLAB_CACHE"] = str(OUT_DIR / "cnnlab-cache")
    start, cpu = time.perf_counter(), _children_cpu_s()
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    out: dict[str, Any] = {"wall_s": wall, "cpu_s": _children_cpu_s() - cpu}
    runs = sorted(p for p in runs_dir.iterdir() if (p / "summary.json").is_file())
    out["run_dir"] = str(max(runs, key=lambda p: p.stat().st_mtime))
    if variant != "off":
        deadline = time.perf_counter() + 600
        name = Path(out["run_dir"]).name
        while not _store_finished(runs_dir / "mlflow.db", name) and time.perf_counter() < deadline:
            time.sleep(0.2)
        out["logged_s"] = time.perf_counter() - start
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small set, 3 epochs, 1 repeat")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    if args.quick:
        data, epochs = make_shapes_dataset(train_per_class=60, test_per_class=20), 3
    else:
        data, epochs = make_shapes_dataset(), None  # None: cnnlab's default epochs
    base = OUT_DIR / "tracking"
    shutil.rmtree(base, ignore_errors=True)
    warm = base / "existing"
    run_once(data, warm, "on, store exists", epochs)  # creates the store, warms the caches
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for r in range(repeats):
        order = VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            folder = warm if variant == "on, store exists" else base / f"{FOLDERS[variant]}-{r}"
            results[variant].append(run_once(data, folder, variant, epochs))
            print(f"repeat {r + 1}/{repeats} {variant}: {results[variant][-1]}", flush=True)
    summary = _summarise(results)
    summary["cpu"] = _cpu_costs(results["off"], base)
    print(table(["variant", "wall s (median)", "x off", "logged after s"], summary["rows"]))
    print(table(["CPU seconds", "value", "x training"], summary["cpu"]["rows"]))
    tracked = summary["ratio"].get("on, store exists")
    verdict = "met" if tracked is not None and tracked <= GOAL else "NOT met"
    print(f"goal: tracked default run <= {GOAL:.2f}x untracked wall time: {verdict}")
    save_result("tracking", {"repeats": repeats, "epochs": epochs, **summary})
    return summary


def _cpu_costs(off_runs: list[dict[str, Any]], base: Path) -> dict[str, Any]:
    """Training CPU of an untracked run vs the tracking process's CPU for one such run."""
    done = [r for r in off_runs if "run_dir" in r]
    if not done:
        return {"rows": []}
    train = statistics.median(r["cpu_s"] for r in done)
    source = Path(done[0]["run_dir"])
    store = base / "cpu-store"
    new = tracker_cpu_s(source, store)  # creates the store's tables
    copy = store / "copy"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("checkpoints", "track.json"))
    existing = tracker_cpu_s(copy, store)
    rows = [
        ["training (tracking off)", train, 1.0],
        ["tracking one run, new store", new, ratio(new, train)],
        ["tracking one run, store exists", existing, ratio(existing, train)],
    ]
    return {"train_cpu_s": train, "tracker_new_cpu_s": new, "tracker_cpu_s": existing, "rows": rows}


def _summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    medians: dict[str, float | None] = {}
    logged: dict[str, float | None] = {}
    for variant, items in results.items():
        walls = [i["wall_s"] for i in items if "wall_s" in i]
        medians[variant] = statistics.median(walls) if walls else None
        done = [i["logged_s"] for i in items if "logged_s" in i]
        logged[variant] = statistics.median(done) if done else None
    ratios = {v: ratio(medians[v], medians["off"]) for v in VARIANTS}
    rows = [[v, medians[v], ratios[v], logged[v]] for v in VARIANTS]
    return {"runs": results, "median_wall_s": medians, "ratio": ratios, "rows": rows}


if __name__ == "__main__":
    main()
