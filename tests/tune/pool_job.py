"""A worker for pool tests: sleeps, and leaves a marker saying how it ended."""

from __future__ import annotations

import os
import time
from pathlib import Path


def sleeper(out_dir: str, sleep_s: float) -> None:
    """Sleep ``sleep_s`` seconds; write ``PID.interrupted`` on Ctrl-C, ``PID.done`` else."""
    end = "interrupted"
    try:
        time.sleep(sleep_s)
        end = "done"
    finally:
        (Path(out_dir) / f"{os.getpid()}.{end}").write_text(end)
