"""Helpers for study tests: run the CLI as a user does, read CSV outputs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

# Tiny runs: 16-px images, one epoch, no gallery of mistakes (its plot is the slow part).
TINY = ["data.img_size=16", "train.epochs=1", "eval.worst_mistakes=0"]


def cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)
