"""Run every benchmark in ``bench/`` (what ``make bench`` does) and collect the results.

Each benchmark runs as its own process (so one's imports, threads and caches never colour
another's timings), prints its own table, and leaves ``bench/out/<name>.json``; this script
gathers them into ``bench/out/results.json`` with the machine facts and each one's wall time.
A benchmark that fails is recorded with its exit status; the others still run.

Usage: python bench/run_all.py [--quick] [--only peers,pipeline,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from common import BENCH_DIR, OUT_DIR, REPO_ROOT, machine_info

# Order matters a little: bench_inference reuses the run bench_peers trains with cnnlab.
BENCHES = (
    "peers", "pipeline", "frozen", "precision", "inference", "data", "tracking", "overhead",
    "study", "issues", "scale", "tune", "eval_batch", "steplog",
)  # fmt: skip
SCRIPTS = {name: f"bench_{name}.py" for name in BENCHES}


def run_one(name: str, quick: bool) -> dict[str, Any]:
    """Run ``bench_<name>.py`` with its output streamed to this console."""
    script = BENCH_DIR / SCRIPTS[name]
    if not script.is_file():
        return {"status": "missing", "script": str(script)}
    argv = [sys.executable, str(script), *(["--quick"] if quick else [])]
    print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
    start = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:  # echo live, keep a copy for benches that write no JSON
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    record: dict[str, Any] = {"exit": proc.returncode, "wall_s": time.perf_counter() - start}
    record["stdout_tail"] = lines[-40:]
    result_file = OUT_DIR / f"{name}.json"
    if result_file.is_file() and result_file.stat().st_mtime >= time.time() - record["wall_s"]:
        record["result"] = json.loads(result_file.read_text())
        record["result"].pop("machine", None)  # one copy at the top is enough
    return record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small settings: a smoke run")
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    command = " ".join([".venv/bin/python", "bench/run_all.py", *(argv or sys.argv[1:])])
    start = time.perf_counter()
    benches = {name: run_one(name, args.quick) for name in args.only.split(",")}
    summary = {
        "command": command,
        "machine": machine_info(),
        "quick": args.quick,
        "total_s": time.perf_counter() - start,
        "benches": benches,
    }
    path = OUT_DIR / "results.json"
    path.write_text(json.dumps(summary, indent=2))
    print("\n=== summary")
    for name, rec in benches.items():
        state = rec.get("status") or ("ok" if rec["exit"] == 0 else f"exit {rec['exit']}")
        print(f"{name:10s} {state:8s} {rec.get('wall_s', 0):7.1f} s")
    print(f"total {summary['total_s']:.0f} s; tables above; all figures in {path}")
    print("record them in bench/RESULTS.md with the command, machine and date")
    return summary


if __name__ == "__main__":
    main()
