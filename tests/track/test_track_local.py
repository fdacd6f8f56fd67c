"""Tracking on the embedded SQLite store: the default a user gets, with nothing to start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.conftest import RUN_FILES, folder_digest, write_folder
from tests.track.track_helpers import artifact_paths, history, runs_of

import cnnlab
from cnnlab.config import load_config
from cnnlab.engine.fit import fit
from cnnlab.runs import Run
from cnnlab.track import flush, observers_for, parent_run
from cnnlab.track.content import flatten
from cnnlab.track.sync import log_runs
from cnnlab.track.target import default_uri

EPOCHS = 2
pytestmark = pytest.mark.slow

# A user's script: train with every default (tracking included), wait for the tracker, and
# say whether MLflow was ever imported by the training process.
SCRIPT = textwrap.dedent("""
    import sys, cnnlab, cnnlab.track
    run = cnnlab.train(sys.argv[1], epochs=int(sys.argv[3]), img_size=16, runs_dir=sys.argv[2])
    assert cnnlab.track.flush(600)
    print("RUN", run.path)
    print("MLFLOW_IMPORTED", "mlflow" in sys.modules)
""")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """One run trained by a plain script with the true defaults; returns (data, run, digest)."""
    base = tmp_path_factory.mktemp("tracked")
    data = write_folder(base / "données ü", classes=3, per_class=10)
    before = folder_digest(data)
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}
    env["CNNLAB_CACHE"] = str(base / "cache")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), str(base / "runs"), str(EPOCHS)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(ln.split(" ", 1) for ln in out.stdout.splitlines() if ln[:3] in {"RUN", "MLF"})
    assert lines["MLFLOW_IMPORTED"] == "False", "training imported MLflow"
    assert "warning" not in out.stderr.lower(), out.stderr
    return data, Path(lines["RUN"]), before


def test_default_run_lands_in_the_embedded_store(default_run: tuple[Path, Path, dict]) -> None:
    data, run_dir, before = default_run
    assert folder_digest(data) == before  # the dataset folder is only ever read
    assert all((run_dir / f).is_file() for f in RUN_FILES)
    uri = default_uri(run_dir.parent)
    assert (run_dir.parent / "mlflow.db").is_file()
    [run] = runs_of(uri)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == run_dir.name
    # params: the whole resolved config, flattened
    config = Run(run_dir).config
    assert run.data.params == flatten(config)
    assert run.data.params["train.epochs"] == str(EPOCHS)
    # per-epoch metrics: one value per epoch, step = epoch, equal to metrics.csv
    rows = Run(run_dir).metrics()
    for key in ("train/loss", "val/loss", "val/accuracy", "val/macro_f1"):
        assert history(uri, run.info.run_id, key) == [
            (int(r["epoch"]), pytest.approx(float(r[key]))) for r in rows
        ]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.data.metrics["final/test/accuracy"] == pytest.approx(
        summary["metrics"]["test"]["accuracy"]
    )
    tags = run.data.tags
    report = json.loads((run_dir / "data_report.json").read_text())
    assert tags["cnnlab.model"] == "cnn" and tags["cnnlab.mode"] == summary["mode"]
    assert tags["cnnlab.dataset_fingerprint"] == report["fingerprint"]
    assert len(tags["cnnlab.split_hash"]) == 16
    assert tags["cnnlab.version"] == cnnlab.__version__
    assert len(tags.get("cnnlab.git_commit", "")) == 40  # the tests run inside a git checkout
    files = artifact_paths(uri, run.info.run_id)
    for name in ("report.html", "model.json", "model.safetensors", "split.csv"):
        assert name in files
    assert "plots/learning_curves.png" in files


def test_track_log_twice_changes_nothing(default_run: tuple[Path, Path, dict]) -> None:
    _, run_dir, _ = default_run
    uri = default_uri(run_dir.parent)
    [before] = runs_of(uri)
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "track", "log", str(run_dir.parent)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
    [(_, report)] = log_runs([run_dir])  # and once more through the API
    assert (report.created, report.values, report.params, report.files) == (False, 0, 0, 0)
    [after] = runs_of(uri)
    assert after.info.run_id == before.info.run_id
    assert history(uri, after.info.run_id, "val/loss") == history(
        uri, before.info.run_id, "val/loss"
    )
    assert len(history(uri, after.info.run_id, "val/loss")) == EPOCHS


def test_ui_serves_the_local_store(default_run: tuple[Path, Path, dict]) -> None:
    import urllib.request

    from tests.track.track_helpers import SERVER_START_S, free_port, wait_http

    _, run_dir, _ = default_run
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "ui", "--runs-dir", str(run_dir.parent),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}" in first
        wait_http(f"http://127.0.0.1:{port}/health", proc, SERVER_START_S)
        api = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name"
        with urllib.request.urlopen(api + "?experiment_name=cnnlab", timeout=30) as resp:
            assert json.loads(resp.read())["experiment"]["name"] == "cnnlab"
    finally:
        proc.terminate()
        rest, err = proc.communicate(timeout=60)
    # no library chatter: deprecations, a line per request, MLflow's notes on its defaults
    for noise in ("Warning", "INFO", "GET /", "Registry store URI"):
        assert noise not in rest + err, rest + err
    # the server and its workers went with the command: soon nothing answers on the port
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.5)
    else:
        pytest.fail(f"the UI server still answers on port {port} after `cnnlab ui` stopped")


def test_tracking_off(tmp_path: Path, tiny_folder: Path) -> None:
    cfg = load_config(values={"data.root": str(tiny_folder), "runs_dir": str(tmp_path)})
    assert observers_for(cfg)  # on by default
    off = load_config(overrides=["track.backend=none"], values={"runs_dir": str(tmp_path)})
    assert observers_for(off) == []
    from cnnlab.api import short_values

    assert short_values({"track": "none"}) == {"track.backend": "none"}  # --track none


def _cfg(data: Path, runs: Path, **values: object) -> object:
    base = {"data.root": str(data), "runs_dir": str(runs), "train.epochs": EPOCHS,
            "data.img_size": 16, "track.backend": "mlflow"}  # fmt: skip
    return load_config(values={**base, **values})


def test_two_fits_nest_under_a_parent_and_the_best_is_tagged(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    runs = tmp_path / "runs"
    cfg = _cfg(data, runs)
    with parent_run(cfg, "study", "mini-study", {"vary": {"train.lr": [0.01, 0.001]}}) as parent:
        first = fit(_cfg(data, runs, **{"train.lr": 0.01, "name": "lr-0.01"}))
        # a scikit-learn head on frozen features: no Lightning epochs, one metrics row
        second = fit(
            _cfg(
                data,
                runs,
                **{
                    "model.name": "efficientnet_lite0",
                    "model.mode": "frozen",
                    "model.head": "logreg",
                    "name": "logreg",
                },
            )
        )
        parent.tag_best(second.path)
    assert flush(600)
    uri = default_uri(runs)
    by_name = {r.info.run_name: r for r in runs_of(uri)}
    top = by_name["mini-study"]
    assert top.data.tags["cnnlab.kind"] == "study"
    assert top.data.params["vary.train.lr"] == "[0.01, 0.001]"
    assert top.info.status == "FINISHED"
    for run in (first, second):
        child = by_name[run.path.name]
        assert child.data.tags["mlflow.parentRunId"] == top.info.run_id
        assert child.info.status == "FINISHED"
    assert by_name["logreg"].data.tags["cnnlab.best"] == "true"
    assert "cnnlab.best" not in by_name["lr-0.01"].data.tags
    assert top.data.tags["cnnlab.best_run_id"] == by_name["logreg"].info.run_id
    assert history(uri, by_name["logreg"].info.run_id, "val/accuracy")[0][0] == 1
    assert [s for s, _ in history(uri, by_name["lr-0.01"].info.run_id, "val/loss")] == [1, 2]


def test_help_does_not_import_mlflow() -> None:
    code = "import sys, cnnlab.cli, cnnlab.track; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_a_server_that_is_down_costs_one_warning(tmp_path: Path, capfd) -> None:
    from tests.track.track_helpers import free_port

    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = fit(_cfg(data, tmp_path / "runs", **{"track.uri": uri}))
    assert flush(600)
    err = capfd.readouterr().err
    assert err.count("warning:") == 1 and uri in err, err
    assert all((run.path / f).is_file() for f in RUN_FILES)
    assert [r["epoch"] for r in run.metrics()] == [str(e) for e in range(1, EPOCHS + 1)]


def test_track_log_of_a_run_trained_without_tracking(tmp_path: Path) -> None:
    """`cnnlab track log` on a folder that was never tracked creates one complete run."""
    import shutil

    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    run = fit(_cfg(data, tmp_path / "runs", **{"track.backend": "none"}))
    assert not (run.path / "track.json").exists()
    assert not (tmp_path / "runs" / "mlflow.db").exists()
    moved = tmp_path / "elsewhere" / run.path.name  # a folder moved to another runs dir
    shutil.copytree(run.path, moved)
    [(_, report)] = log_runs([moved])
    assert report.created and report.status == "FINISHED"
    uri = default_uri(moved.parent)
    [logged] = runs_of(uri)
    assert logged.info.run_id == report.run_id
    assert [s for s, _ in history(uri, logged.info.run_id, "val/loss")] == [1, 2]
    assert "model.safetensors" in artifact_paths(uri, logged.info.run_id)
    assert json.loads((moved / "track.json").read_text())["uid"] == logged.data.tags["cnnlab.uid"]


def test_worker_processes_inherit_the_open_parent(tmp_path: Path) -> None:
    """A study's worker processes nest their runs under the parent the study opened."""
    cfg = load_config(values={"runs_dir": str(tmp_path), "track.backend": "mlflow"})
    code = "from cnnlab.track import current_parent; print(current_parent().info['uid'])"
    with parent_run(cfg, "study", "workers", folder=tmp_path / "study") as parent:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == parent.info["uid"], out.stderr
    assert "CNNLAB_TRACK_PARENT" not in os.environ
    saved = json.loads((tmp_path / "study" / "track.json").read_text())
    assert saved["uid"] == parent.info["uid"] and saved["kind"] == "study"
    assert flush(600)
    [top] = runs_of(default_uri(tmp_path))
    assert top.info.run_name == "workers" and top.info.status == "FINISHED"


@pytest.mark.parametrize("command", ["ui", "track log", "track register"])
def test_tracking_commands_have_help_with_example(command: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", *command.split(), "--help"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Example" in out.stdout
