"""``cnnlab tune --track`` works as train's and study's do (README: ``--track none``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from tests.tune.conftest import TINY_ARGS


@pytest.mark.slow
def test_track_none_turns_tracking_off_as_in_train_and_study(small_folder, tmp_path):
    out = tmp_path / "tune"
    env = dict(os.environ, CNNLAB_TRACK="mlflow", COLUMNS="200", NO_COLOR="1")  # auto: MLflow
    tune = [sys.executable, "-m", "cnnlab", "tune"]
    common = [str(small_folder), "--space", "train", "--trials", "1", "--epochs", "1", *TINY_ARGS]
    args = [*common, "--out", str(out)]

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*tune, *extra], capture_output=True, text=True, env=env,
                              timeout=600)  # fmt: skip

    done = run(*args, "--track", "none")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    settings = yaml.safe_load((out / "tune.yaml").read_text(encoding="utf-8"))
    assert settings["values"]["track.backend"] == "none"
    assert not list(out.rglob("mlflow.db")) and not list(out.rglob("mlartifacts"))
    # the same command continues; another --track is another tune, refused by name
    other = run(*args, "--track", "mlflow")
    assert other.returncode == 2, other.stderr
    assert "track.backend=none (now track.backend=mlflow)" in other.stderr, other.stderr
    report = run("report", str(out), "--track", "mlflow")
    assert report.returncode == 2 and "--track is chosen when a tune starts" in report.stderr
    bad = run(*common, "--out", str(tmp_path / "t2"), "--track", "nope")
    assert bad.returncode == 2 and "track.backend" in bad.stderr, bad.stderr
    assert not (tmp_path / "t2").exists()
