"""Every name cnnlab logs is one MLflow accepts; a store that refuses a run says so in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import write_folder
from tests.track.track_helpers import runs_of

import cnnlab
from cnnlab.config import load_config
from cnnlab.engine.fit import fit
from cnnlab.track import flush, parent_run
from cnnlab.track.target import default_uri

pytestmark = pytest.mark.slow
TINY = {"data__img_size": 16, "eval__worst_mistakes": 0, "eval__explain": False}


def test_a_tune_of_the_cnn_space_is_logged_whole(tmp_path: Path) -> None:
    """The default space names its parameters model.cnn.filters[0]...: MLflow refuses '['."""
    data = write_folder(tmp_path / "data", classes=3, per_class=8, size=16)
    t = cnnlab.tune(data, space="cnn", trials=2, epochs=1, out=str(tmp_path / "tune"), **TINY)
    assert flush(600)
    runs = runs_of(default_uri(t.path / "trials"))
    [top] = [r for r in runs if r.data.tags["cnnlab.kind"] == "tune"]
    assert top.info.status == "FINISHED"
    params = top.data.params
    assert params["space.params.model.cnn.filters.0.type"] == "int"
    assert params["space.params.model.cnn.kernel_size.1.high"] == "7"
    assert params["space_name"] == "cnn"
    children = sorted(r.info.run_name for r in runs if r is not top)
    assert children == ["trial-0000", "trial-0001"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_odd_names_and_long_values_reach_mlflow(tmp_path: Path) -> None:
    """A user's space file or plan may hold any name; a value may be longer than MLflow keeps."""
    from cnnlab.track.content import MAX_KEY_CHARS, MAX_PARAM_CHARS, flatten, tracker_key

    params = {
        "space": {"params": {"a[0]": 1, "a.0": 2, "b (x:y)": 3, "c//..": 4, "d" * 300: 5}},
        "long": "v" * (MAX_PARAM_CHARS + 50),
    }
    flat = flatten(params)
    assert len(flat) == 6  # a[0] and a.0 stay apart
    assert all(len(k) <= MAX_KEY_CHARS for k in flat)
    assert flat["long"].endswith(f"({MAX_PARAM_CHARS + 50} characters; cut to fit)")
    assert len(flat["long"]) == MAX_PARAM_CHARS
    cfg = load_config(values={"runs_dir": str(tmp_path), "track.backend": "mlflow"})
    with parent_run(cfg, "study", "odd names", params):
        pass
    assert flush(600)
    [top] = runs_of(default_uri(tmp_path))
    assert top.info.status == "FINISHED"
    assert top.data.params == flat
    assert top.data.params[tracker_key("space.params.b (x:y)")] == "3"


def test_track_log_into_a_store_that_fails_is_one_error_line(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=8, size=16)
    cfg = load_config(values={"data.root": str(data), "runs_dir": str(tmp_path / "runs"),
                              "train.epochs": 1, "data.img_size": 16,
                              "track.backend": "none"})  # fmt: skip
    run = fit(cfg)
    (tmp_path / "runs" / "mlflow.db").write_bytes(b"not a database " * 100)
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "track", "log", str(run.path)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert str(run.path) in lines[0] and "Traceback" not in proc.stderr
