"""Two ``cnnlab ui`` started at the same moment each announce the address they serve.

Both used to check that port 5000 was free, both announced it, and the second server died
with "address already in use" while its command kept saying where to browse.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from tests.track.track_helpers import SERVER_START_S, free_port


def _ui(runs: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "ui", "--runs-dir", str(runs), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_two_uis_at_once_each_serve_the_port_they_announce(tmp_path: Path) -> None:
    env = dict(os.environ, CNNLAB_CACHE=str(tmp_path / "cache"))
    port = free_port()
    stores = []
    for name in ("a", "b"):  # a store each: two servers creating one store would collide
        (tmp_path / name).mkdir()
        (tmp_path / name / "mlflow.db").touch()  # SQLite: an empty file is an empty database
        stores.append(tmp_path / name)
    procs = [_ui(runs, port, env) for runs in stores]
    try:
        announced = []
        for proc in procs:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            assert found, f"no address announced: {line!r} (exit {proc.poll()})"
            announced.append(int(found.group(1)))
        assert port in announced and len(set(announced)) == 2, announced
        time.sleep(2)  # a server that lost its port would have died by now
        for proc, at in zip(procs, announced, strict=True):
            assert proc.poll() is None, f"the UI on {at} exited with {proc.returncode}"
            with urllib.request.urlopen(f"http://127.0.0.1:{at}/health", timeout=30) as resp:
                assert resp.status == 200
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=SERVER_START_S)
