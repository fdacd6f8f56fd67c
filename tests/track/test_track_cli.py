"""What the tracking commands say: a server down, a failure after return, registering, help."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import write_folder
from tests.track.track_helpers import client, cnnlab_cli, free_port

from cnnlab.config import load_config
from cnnlab.engine.fit import fit
from cnnlab.runs import Run, weights_digest
from cnnlab.track.target import default_uri

pytestmark = pytest.mark.slow
CHATTER = ("Warning", "INFO", "Creating initial", "Successfully registered", "Created version")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("data") / "shapes", classes=3, per_class=8, size=16)


def _untracked_run(data: Path, runs: Path, seed: int = 42) -> Run:
    return fit(load_config(values={
        "data.root": str(data), "runs_dir": str(runs), "train.epochs": 1, "train.seed": seed,
        "data.img_size": 16, "eval.worst_mistakes": 0, "track.backend": "none",
    }))  # fmt: skip


def _agents_for(uri: str) -> list[str]:
    """Tracking processes (of any test) still logging to ``uri``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"cnnlab.track.agent" in argv and any(uri.encode() in a for a in argv):
            found.append(cmdline.parent.name)
    return found


def test_train_against_a_server_that_is_down_says_so_once(data: Path, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = cnnlab_cli("train", str(data), "--epochs", "1", "--img-size", "16", "--runs-dir",
                str(tmp_path / "runs"), "--name", "down", f"track.uri={uri}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "warning:" in line]
    assert len(warnings) == 1, proc.stderr
    assert uri in warnings[0] and f"cnnlab track log {tmp_path / 'runs' / 'down'}" in warnings[0]
    assert "tracking: MLflow" not in proc.stderr + proc.stdout  # it does not claim to track
    assert not _agents_for(uri)  # nothing goes on retrying after the command returned
    assert (tmp_path / "runs" / "down" / "summary.json").is_file()


def test_track_log_to_a_server_that_is_down_fails_in_seconds(data: Path, tmp_path: Path) -> None:
    run = _untracked_run(data, tmp_path / "runs")
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    proc = cnnlab_cli("track", "log", str(run.path), f"track.uri={uri}")
    assert time.monotonic() - start < 60  # MLflow's own retries took four minutes
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot reach the tracking server {uri} (connection refused); start it, or "
        "name another with track.uri=..."
    ]
    register = cnnlab_cli("track", "register", str(run.path), "--name", "m", f"track.uri={uri}")
    assert register.returncode == 2 and len(register.stderr.strip().splitlines()) == 1


def test_register_twice_is_one_version_new_weights_another(data: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first, second = _untracked_run(data, runs), _untracked_run(data, runs, seed=7)
    assert weights_digest(first.path) != weights_digest(second.path)
    logged = cnnlab_cli("track", "log", str(first.path))  # a new store: MLflow creates its tables
    assert logged.returncode == 0 and logged.stderr == "", logged.stderr
    outs = [cnnlab_cli("track", "register", str(run.path), "--name", "shapes")
            for run in (first, first, second)]  # fmt: skip
    for out in outs:
        assert out.returncode == 0, out.stderr[-3000:]
        assert not any(word in out.stderr for word in CHATTER), out.stderr
    assert "registered shapes version 1" in outs[0].stdout
    assert "already registered (the same weights): shapes version 1" in outs[1].stdout
    assert "registered shapes version 2" in outs[2].stdout
    versions = client(default_uri(runs)).search_model_versions("name = 'shapes'")
    digests = {str(v.version): v.tags["cnnlab.weights_sha256"] for v in versions}
    assert digests == {"1": weights_digest(first.path), "2": weights_digest(second.path)}


def test_train_help_tells_the_default_backend() -> None:
    out = cnnlab_cli("train", "--help")
    assert "default: auto" in out.stdout and "default: mlflow]" not in out.stdout


def _in_terminal(argv: list[str], timeout: float = 600) -> str:
    """Run a command with a pseudo-terminal as its output; read until every holder of that
    terminal (the command, and any process it left behind) has closed it."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env={**env, "COLUMNS": "200", "NO_COLOR": "1"})  # fmt: skip
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: nobody holds the terminal any more
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    return b"".join(chunks).decode(errors="replace")


def test_a_failure_after_train_returned_still_reaches_its_terminal(
    data: Path, tmp_path: Path
) -> None:
    """A lone run is logged after `cnnlab train` returns: a store that fails then is told to
    the terminal the command ran in (it was told to nobody)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "mlflow.db").write_bytes(b"not a database " * 100)
    text = _in_terminal([
        sys.executable, "-m", "cnnlab", "train", str(data), "--epochs", "1", "--img-size", "16",
        "--runs-dir", str(runs), "--name", "late",
    ])  # fmt: skip
    run = runs / "late"
    assert (run / "summary.json").is_file(), text[-3000:]
    late = [line for line in text.splitlines() if "warning:" in line]
    assert len(late) == 1, text[-3000:]
    assert "tracking to sqlite:///" in late[0] and f"cnnlab track log {run}" in late[0]
    assert text.index("warning:") > text.index("best epoch")  # after the command's results


def test_registered_model_follows_the_runs_own_tta_choice(data: Path, tmp_path: Path) -> None:
    """A run trained with flips whose model.json says tta: null (eval.tta may drop it)
    predicts through MLflow as plain `cnnlab predict` does, not as `--tta` (tracking.md)."""
    import mlflow
    import pandas as pd

    from cnnlab.predict import Predictor

    run = fit(load_config(values={
        "data.root": str(data), "runs_dir": str(tmp_path / "runs"), "train.epochs": 1,
        "data.img_size": 16, "data.augment": "light", "eval.tta": "false",
        "eval.worst_mistakes": 0, "track.backend": "none",
    }))  # fmt: skip
    assert run.model_card["tta"] is None
    done = cnnlab_cli("track", "register", str(run.path), "--name", "no-tta")
    assert done.returncode == 0, done.stderr[-3000:]
    images = [str(p) for p in sorted(data.rglob("*.png"))[::4]]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(default_uri(tmp_path / "runs"))
    try:
        model = mlflow.pyfunc.load_model("models:/no-tta/1")
        table = model.predict(pd.DataFrame({"path": images}))
    finally:
        mlflow.set_tracking_uri(previous)
    plain = Predictor(run.path).predict(images, top_k=1)
    flipped = Predictor(run.path).predict(images, top_k=1, tta=True)
    assert list(table["prob"]) == pytest.approx([r["prob"] for r in plain], abs=1e-6)
    assert list(table["prob"]) != pytest.approx([r["prob"] for r in flipped], abs=1e-6)
