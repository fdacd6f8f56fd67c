"""A killed scan resumes where it stopped: verdicts are saved while it runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import folder_digest, write_folder

from cnnlab.data.scan import scan_dataset

# Runs the real scan with a save after every chunk, and SIGKILLs itself right after the
# third save: a scan killed part-way, at a known point.
KILLED_SCAN = """
import os, signal, sys
import cnnlab.data.scan as scan
scan.SAVE_EVERY_S = 0.0
saves = []
real = scan._save_cache
def save_then_die(*args):
    real(*args)
    saves.append(1)
    if len(saves) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
scan._save_cache = save_then_die
scan.scan_dataset(sys.argv[1], progress=False, workers=int(sys.argv[2]))
"""


def test_a_killed_scan_continues_where_it_stopped(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", classes=3, per_class=60, size=16)
    (root / "class_0" / "broken.png").write_bytes(b"not a png")
    before = folder_digest(root)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for workers in ("1", "2"):  # in-process and the process pool
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_SCAN, str(root), workers], env=env, timeout=600
        )
        assert killed.returncode == -signal.SIGKILL
        resumed = scan_dataset(root, progress=False)
        assert 0 < resumed.from_cache < 181  # part was kept, the rest decoded now
        full = scan_dataset(root, progress=False)
        assert full.from_cache == 181
        assert resumed.records == full.records and resumed.skipped == full.skipped
        assert [s.path for s in full.skipped] == ["class_0/broken.png"]
        # the next round starts from nothing again
        for f in (Path(os.environ["CNNLAB_CACHE"]) / "scan").iterdir():
            f.unlink()
    assert folder_digest(root) == before
