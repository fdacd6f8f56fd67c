"""A study's worker processes end with it, even when it is killed with SIGKILL.

Before, ``kill -9`` of ``cnnlab study --workers 2`` left both workers training, unseen: a
``--resume`` started beside them trained the same runs into the same folders.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import folder_digest, process_alive, write_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc"),
]


def _workers(pid: int) -> list[int]:
    """The pool's worker processes: children of ``pid`` started by multiprocessing's spawn."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and b"--multiprocessing-fork" in argv:
            found.append(int(proc.name))
    return found


def _wait_for(check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    return check()


def test_kill_9_of_a_study_ends_its_workers(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=10, size=16)
    before = folder_digest(data)
    runs = tmp_path / "study" / "runs"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    study = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "study", str(data), "--vary", "train.lr=1e-2,5e-2",
         "--seeds", "1", "--workers", "2", "--out", str(tmp_path / "study"), "--track", "none",
         "train.epochs=500", "data.img_size=16", "eval.explain=false"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    workers: list[int] = []
    try:
        # both workers started and training: each has made its run folder
        ready = _wait_for(lambda: len(list(runs.glob("c*"))) == 2 and _workers(study.pid), 300)
        assert study.poll() is None, study.stderr.read()[-2000:] if study.stderr else ""
        workers = list(ready or [])
        assert len(workers) == 2, f"expected 2 workers, saw {workers}"
    finally:
        study.send_signal(signal.SIGKILL)
        study.wait()
    try:
        gone = _wait_for(lambda: not any(map(process_alive, workers)), 30)
        assert gone, "workers outlived the study"
    finally:
        for pid in workers:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert folder_digest(data) == before
