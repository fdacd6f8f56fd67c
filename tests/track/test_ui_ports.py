"""Two ``cnnlab ui`` started at the same moment each announce the address they serve.

Both used to check that port 5000 was free, both announced it, and the second server died
with "address already in use" while its command kept saying where to browse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.track.track_helpers import (
    SERVER_START_S,
    assert_each_serves_what_it_announced,
    free_port,
)


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
        assert_each_serves_what_it_announced(procs, port, "/health")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=SERVER_START_S)
