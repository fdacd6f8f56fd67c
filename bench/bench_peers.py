"""Time to accuracy: cnnlab's defaults vs a plain PyTorch script, fastai and Ultralytics.

Each contender trains from scratch on the same generated 10-class 32-px set (3000 train /
1000 held-out test PNGs, ImageFolder layout) as its own process, timed whole: interpreter
start, imports, data loading, training and the test evaluation — what a user waits for.

Goals (issue 7): cnnlab reaches fastai's test accuracy or better in <= half its wall time,
and beats the plain script by a clear margin at <= 1.5x its wall time.

Peers need fastai / ultralytics (the ``bench`` extra). To keep them out of the project's
venv, point ``CNNLAB_BENCH_PEER_PYTHON`` at another interpreter that has them.

Usage: python bench/bench_peers.py [--quick] [--only plain,fastai,ultralytics,cnnlab]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import (
    BENCH_DIR,
    OUT_DIR,
    make_shapes_dataset,
    python_for,
    ratio,
    run_json_subprocess,
    save_result,
    table,
)

PEERS = ("plain", "fastai", "ultralytics", "cnnlab")
MODULE_OF = {"fastai": "fastai", "ultralytics": "ultralytics", "cnnlab": "cnnlab", "plain": "torch"}
CLEAR_MARGIN = 0.03  # "a clear margin": 3 points of test accuracy


def has_module(python: str, module: str) -> bool:
    """Whether ``python`` can import ``module`` (without importing it here)."""
    code = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def peer_command(peer: str, data: Path, epochs: int | None) -> list[str]:
    """The argv that runs one contender as its own process."""
    if peer == "cnnlab":
        argv = [sys.executable, str(BENCH_DIR / "peers" / "cnnlab_run.py"), str(data)]
        argv.append(str(OUT_DIR / "runs"))
    else:
        python = python_for("CNNLAB_BENCH_PEER_PYTHON")
        script = {"plain": "plain_torch.py", "fastai": "fastai_run.py"}.get(peer)
        argv = [python, str(BENCH_DIR / "peers" / (script or "ultralytics_run.py")), str(data)]
        if peer == "ultralytics":
            argv.append(str(OUT_DIR / "ultralytics"))
    if epochs is not None:  # None: the contender's own default (cnnlab) or the recipe's 10
        argv += ["--epochs", str(epochs)]
    return argv


def run_peer(peer: str, data: Path, epochs: int | None, timeout: float) -> dict[str, Any]:
    """Run one contender; a missing library is reported, not raised."""
    python = sys.executable if peer == "cnnlab" else python_for("CNNLAB_BENCH_PEER_PYTHON")
    if not has_module(python, MODULE_OF[peer]):
        return {"error": f"{MODULE_OF[peer]} not importable by {python}"}
    env = {"CNNLAB_OFFLINE": "1", "CNNLAB_CACHE": str(OUT_DIR / "cnnlab-cache")}
    return run_json_subprocess(peer_command(peer, data, epochs), timeout=timeout, env=env)


def verdicts(res: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's two goals, checked against what was measured."""
    ours, lines = res.get("cnnlab", {}), []
    for peer, need_acc, max_time in (("fastai", 0.0, 0.5), ("plain", CLEAR_MARGIN, 1.5)):
        other = res.get(peer, {})
        if "test_acc" not in ours or "test_acc" not in other or ours["test_acc"] is None:
            lines.append(f"vs {peer}: not measured")
            continue
        gap = ours["test_acc"] - other["test_acc"]
        t = ratio(ours["process_s"], other["process_s"]) or float("nan")
        ok = gap >= need_acc and t <= max_time
        lines.append(
            f"vs {peer}: accuracy {gap:+.3f} (need >= {need_acc:+.2f}), time x{t:.2f} "
            f"(need <= {max_time}) -> {'MET' if ok else 'NOT MET'}"
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs each: a smoke run")
    parser.add_argument("--only", default=",".join(PEERS), help="comma-separated contenders")
    args = parser.parse_args(argv)
    data = make_shapes_dataset()
    epochs = 2 if args.quick else None
    results: dict[str, dict[str, Any]] = {}
    for peer in args.only.split(","):
        print(f"[peers] running {peer} ...", flush=True)
        recipe_epochs = epochs if (epochs or peer == "cnnlab") else 10
        results[peer] = run_peer(peer, data, recipe_epochs, timeout=900)
        print(f"[peers] {peer}: {results[peer]}", flush=True)
    base = results.get("fastai", {}).get("process_s")
    rows = [
        [p, r.get("test_acc"), r.get("process_s"), ratio(r.get("process_s"), base), r.get("error")]
        for p, r in results.items()
    ]
    print(table(["contender", "test acc", "wall s", "time / fastai", "error"], rows))
    checks = verdicts(results)
    print("\n".join(checks))
    payload = {"dataset": str(data), "quick": args.quick, "results": results, "goals": checks}
    print(f"[peers] saved {save_result('peers', payload)}")
    return payload


if __name__ == "__main__":
    main()
