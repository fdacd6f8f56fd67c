"""Tracking to a real `mlflow server` process: logging, registering, and a server that dies.

The tests share one server (started on a free loopback port over a SQLite file); the last
test kills it mid-run, so it stays last in this file.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import RUN_FILES, write_folder
from tests.track.track_helpers import Server, artifact_paths, history, runs_of

from cnnlab.config import load_config
from cnnlab.engine.fit import fit
from cnnlab.runs import Run
from cnnlab.track import flush, observers_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("mlflow-server")).start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("data") / "shapes", classes=3, per_class=10)


def _cfg(data: Path, runs: Path, uri: str, epochs: int, **values: object):
    base = {"data.root": str(data), "runs_dir": str(runs), "train.epochs": epochs,
            "data.img_size": 16, "track.uri": uri, "track.experiment": "team"}  # fmt: skip
    return load_config(values={**base, **values})


@pytest.fixture(scope="module")
def server_run(server: Server, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("server-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CNNLAB_TRACK", raising=False)
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        run = fit(_cfg(data, base / "runs", server.uri, epochs=2))
        assert flush(600)
    return run


def test_server_gets_params_metrics_and_artifacts(server: Server, server_run: Run) -> None:
    [run] = [r for r in runs_of(server.uri, "team") if r.info.run_name == server_run.name]
    assert run.info.status == "FINISHED"
    assert run.data.params["track.uri"] == server.uri
    assert run.data.params["data.img_size"] == "16"
    assert [s for s, _ in history(server.uri, run.info.run_id, "val/accuracy")] == [1, 2]
    assert "final/val/macro_f1" in run.data.metrics
    files = artifact_paths(server.uri, run.info.run_id)
    assert {"report.html", "model.json", "model.safetensors", "split.csv"} <= files
    # artifacts went through the server to its own store, not into the run's folder
    assert list((server.folder / "artifacts").rglob("model.safetensors"))


def _cnnlab_predict_labels(run: Run, images: list[Path], out: Path) -> dict[str, str]:
    tta = ["--tta"] if run.model_card.get("tta") else []
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "predict", str(run.path), *map(str, images), *tta,
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="") as fh:
        return {row["path"]: row["label"] for row in csv.DictReader(fh)}


def test_registered_model_predicts_like_cnnlab_predict(
    server: Server, server_run: Run, data: Path, tmp_path: Path
) -> None:
    import mlflow
    import pandas as pd

    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "track", "register", str(server_run.path),
         "--name", "shapes", f"track.uri={server.uri}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "models:/shapes/1" in proc.stdout
    images = sorted(data.rglob("*.png"))[::3]
    expected = _cnnlab_predict_labels(server_run, images, tmp_path / "cli.csv")
    assert server_run.model_card["tta"] == "hflip"  # the comparison covers TTA
    mlflow.set_tracking_uri(server.uri)
    model = mlflow.pyfunc.load_model("models:/shapes/1")
    table = model.predict(pd.DataFrame({"path": [str(p) for p in images]}))
    assert dict(zip(table["path"], table["label"], strict=True)) == expected
    # and through the `mlflow models predict` command, in this environment
    (tmp_path / "in.csv").write_text("path\n" + "\n".join(str(p) for p in images) + "\n")
    cli = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "predict", "-m", "models:/shapes/1",
         "-i", str(tmp_path / "in.csv"), "-t", "csv", "-o", str(tmp_path / "out.json"),
         "--env-manager", "local"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "MLFLOW_TRACKING_URI": server.uri},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-3000:]
    rows = json.loads((tmp_path / "out.json").read_text())["predictions"]
    assert {r["path"]: r["label"] for r in rows} == expected


class KillServerAtEpoch:
    """A run observer that kills the server once it holds this run's first epoch."""

    def __init__(self, server: Server, epoch: int) -> None:
        self.server, self.epoch = server, epoch
        self.run_id = ""

    def run_started(self, run_dir: Path) -> None:
        self.name = run_dir.name

    def epoch_ended(self, run_dir: Path, epoch: int) -> None:
        if epoch != self.epoch:
            return
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not self.run_id:
            found = [r for r in runs_of(self.server.uri, "team", must_exist=False)
                     if r.info.run_name == self.name]  # fmt: skip
            if found and history(self.server.uri, found[0].info.run_id, "val/loss"):
                self.run_id = found[0].info.run_id
            time.sleep(0.5)
        assert self.run_id, "the tracker never logged the first epoch"
        self.server.kill()

    def run_ended(self, run_dir: Path, status: str) -> None:
        pass


def test_server_killed_mid_run_then_track_log_fills_the_gap(
    server: Server, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    # live from the first epoch: the server must hold epoch 1 before it is killed
    cfg = _cfg(data, tmp_path / "runs", server.uri, epochs=4, **{"track.live_after": 0})
    killer = KillServerAtEpoch(server, epoch=2)
    run = fit(cfg, observers=[*observers_for(cfg), killer])
    assert flush(600)
    err = capfd.readouterr().err
    assert err.count("warning:") == 1, err
    assert "cnnlab track log" in err and server.uri in err
    # training went on: the run folder is complete, every epoch is in metrics.csv
    assert all((run.path / f).is_file() for f in RUN_FILES)
    assert [r["epoch"] for r in run.metrics()] == ["1", "2", "3", "4"]
    # the server comes back on the same store; `track log` sends what it missed
    again = Server(server.folder).start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cnnlab", "track", "log", str(run.path),
             f"track.uri={again.uri}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        [logged] = [r for r in runs_of(again.uri, "team") if r.info.run_name == run.name]
        assert logged.info.run_id == killer.run_id  # the same run, completed
        assert logged.info.status == "FINISHED"
        for key in ("train/loss", "val/loss", "val/accuracy"):
            assert [s for s, _ in history(again.uri, logged.info.run_id, key)] == [1, 2, 3, 4]
        assert "model.safetensors" in artifact_paths(again.uri, logged.info.run_id)
    finally:
        again.kill()
