"""One training per run folder: a second ``cnnlab train --resume`` of a folder being trained
stops at once with one ``error:`` line naming the process, and the lock dies with its holder
(``kill -9``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder

from cnnlab.runlock import LOCK, RunBusy, lock_run, release_run


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", *args]


def test_a_second_resume_of_a_folder_in_training_is_refused(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=12, size=16)
    before = folder_digest(data)
    env = dict(os.environ, CNNLAB_CACHE=str(tmp_path / "cache"), COLUMNS="200", NO_COLOR="1")
    run = tmp_path / "runs" / "busy"
    first = subprocess.Popen(
        _cli("train", str(data), "--epochs", "5000", "--name", "busy",
             "--runs-dir", str(tmp_path / "runs"), "--track", "none", "data.img_size=16"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while not (run / "checkpoints" / "last.ckpt").is_file():  # training, lock held
            assert first.poll() is None, first.stderr.read()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the first training never saved a checkpoint"
            time.sleep(0.1)
        second = subprocess.run(
            _cli("train", "--resume", str(run), "--epochs", "6000"),
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert second.returncode != 0
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), second.stderr
        assert f"being trained by process {first.pid}" in lines[0], lines[0]
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first training goes on, untouched
        with pytest.raises(RunBusy):  # the API refuses too
            lock_run(run)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    fd = lock_run(run)  # the OS dropped the killed holder's lock: a resume may go on
    release_run(fd)
    assert (run / LOCK).is_file()
    assert folder_digest(data) == before
