"""Peer (d): cnnlab with its defaults, timed as its own process like the other peers.

Only the data folder, a seed and where to write the run are given; every training choice is
cnnlab's default. Prints one JSON line with the test accuracy read from the run's
``summary.json``.

Usage: python bench/peers/cnnlab_run.py DATA_ROOT RUNS_DIR [--epochs N] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def find_test_accuracy(summary: dict[str, Any]) -> float | None:
    """The test top-1 accuracy in a summary, whatever nesting the engine chose."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(summary, "")
    for key in ("test/acc", "test/accuracy", "test/top1", "metrics/acc", "acc", "accuracy"):
        for name, value in flat.items():
            if name.lower().endswith(key) and isinstance(value, int | float):
                return float(value)
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("runs_dir")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="short names or section__field=value")
    args = parser.parse_intermixed_args()  # KEY=VALUE pairs may follow --epochs
    start = time.perf_counter()
    import yaml

    import cnnlab

    # Values are read as YAML scalars, as cnnlab's own KEY=VALUE overrides are: 3 -> int.
    extra: dict[str, Any] = {
        k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.overrides)
    }
    if args.epochs is not None:
        extra["epochs"] = args.epochs
    run = cnnlab.train(args.data, seed=0, name="bench-peers", runs_dir=args.runs_dir, **extra)
    summary = run.summary
    out = {
        "peer": "cnnlab",
        "test_acc": find_test_accuracy(summary),
        "train_s": time.perf_counter() - start,
        "run_dir": str(run.path),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
