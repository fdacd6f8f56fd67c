"""`cnnlab demo`, the job `make demo` runs, as a user runs it: digits to two reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_trains_both_models_and_beats_95_percent(tmp_path: Path) -> None:
    env = dict(os.environ, COLUMNS="120")
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "demo", "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    scratch = json.loads((tmp_path / "demo-cnn-scratch" / "summary.json").read_text())
    frozen = json.loads((tmp_path / "demo-effnet-frozen" / "summary.json").read_text())
    assert scratch["metrics"]["test"]["accuracy"] >= 0.95
    assert frozen["mode"] == "frozen" and frozen["model"] == "efficientnet_lite0"
    assert frozen["metrics"]["test"]["accuracy"] >= 0.85
    # Both runs saw the same images: the second reused the first one's split.
    split_a = (tmp_path / "demo-cnn-scratch" / "split.csv").read_text()
    assert split_a == (tmp_path / "demo-effnet-frozen" / "split.csv").read_text()
    assert "cnnlab demo: digits" in out.stdout
    assert out.stdout.count("report.html") == 2
    for run in ("demo-cnn-scratch", "demo-effnet-frozen"):
        assert (tmp_path / run / "report.html").stat().st_size > 10_000
