"""W&B as the tracking backend: offline run files with the same content as MLflow gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from tests.conftest import write_folder
from tests.track.wandb_reader import read_offline

from cnnlab.config import load_config
from cnnlab.engine.fit import fit
from cnnlab.runs import Run
from cnnlab.track import flush, parent_run
from cnnlab.track.content import flatten
from cnnlab.track.sync import log_runs
from cnnlab.track.wandb_store import wait_for_fresh_folder

EPOCHS = 2
pytestmark = pytest.mark.slow


def test_a_run_logged_to_wandb_offline_and_logged_again(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    runs = tmp_path / "runs"
    values = {"data.root": str(data), "runs_dir": str(runs), "train.epochs": EPOCHS,
              "data.img_size": 16, "track.backend": "wandb",
              "track.experiment": "pets"}  # fmt: skip
    cfg = load_config(values=values)
    with parent_run(cfg, "study", "mini", {"vary": {"train.lr": [0.01]}}) as parent:
        run = fit(cfg)
        parent.tag_best(run.path)
    assert flush(600)
    uid = json.loads((run.path / "track.json").read_text())["uid"]
    logged = read_offline(runs, uid)
    # trained, then opened once more to be tagged best (W&B resumes it: one more offline file)
    assert logged.files_found == 2 and logged.name == run.path.name
    assert logged.group == "mini" and "best" in logged.tags and logged.job_type == "run"
    top = read_offline(runs, parent.info["uid"])
    deadline = time.monotonic() + 120  # s; the parent's offline file may still be closing
    while not top.name and time.monotonic() < deadline:
        time.sleep(1)
        top = read_offline(runs, parent.info["uid"])
    assert (top.name, top.group, top.job_type) == ("mini", "mini", "study")
    assert top.config["vary.train.lr"] == "[0.01]"
    assert top.summary["cnnlab.best_run"] == run.path.name and top.exit_codes == [0]
    # params: the whole resolved config, flattened (as MLflow's params), plus the cnnlab tags
    params = flatten(Run(run.path).config)
    assert {k: logged.config[k] for k in params} == params
    assert logged.config["train.epochs"] == str(EPOCHS)
    assert logged.config["cnnlab.model"] == "cnn" and len(logged.config["cnnlab.split_hash"]) == 16
    # one value per epoch per metric, step = epoch, equal to metrics.csv
    rows = run.metrics()
    for key in ("train/loss", "val/loss", "val/accuracy", "val/macro_f1", "lr"):
        assert logged.history[key] == [
            (int(r["epoch"]), pytest.approx(float(r[key]))) for r in rows
        ], key
    summary = json.loads((run.path / "summary.json").read_text())
    assert logged.summary["final/test/accuracy"] == pytest.approx(
        summary["metrics"]["test"]["accuracy"]
    )
    assert logged.summary["cnnlab.status"] == "FINISHED" and logged.exit_codes == [0, 0]
    for name in ("report.html", "model.json", "model.safetensors", "plots/learning_curves.png"):
        assert name in logged.files, logged.files
        assert list((runs / "wandb").glob(f"offline-run-*-{uid}/files/{name}")), name
    assert "config.yaml" not in logged.files  # W&B's own name; the config is in the W&B config

    # logging the finished run again sends nothing and opens no second offline run
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "track", "log", str(run.path), "track.backend=wandb"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout
    assert read_offline(runs, uid).files_found == 2

    # `track log` to another W&B folder (never sent there): one complete run, once
    other = ["track.backend=wandb", f"track.uri={tmp_path / 'later'}"]
    [(_, report)] = log_runs([run.path], other)
    assert report.created and report.status == "FINISHED" and report.files > 5
    later = read_offline(tmp_path / "later", uid)
    assert [s for s, _ in later.history["val/loss"]] == list(range(1, EPOCHS + 1))
    assert "model.safetensors" in later.files
    assert _mine(later.config) == _mine(logged.config)
    [(_, again)] = log_runs([run.path], other)
    assert (again.created, again.values, again.files, again.status) == (False, 0, 0, None)
    assert read_offline(tmp_path / "later", uid).files_found == 1


def _mine(config: dict) -> dict:
    """A W&B config without W&B's own ``_wandb`` telemetry."""
    return {k: v for k, v in config.items() if not k.startswith("_")}


# wandb hidden from the import system, as on a machine without the extra
NO_WANDB = textwrap.dedent("""
    import sys
    class NoWandb:
        def find_spec(self, name, path=None, target=None):
            if name == "wandb" or name.startswith("wandb."):
                raise ModuleNotFoundError("No module named 'wandb'")
    sys.meta_path.insert(0, NoWandb())
    sys.argv = ["cnnlab", *sys.argv[1:]]
    from cnnlab.cli import main
    main()
""")


def test_wandb_missing_is_one_clear_line(tmp_path: Path, tiny_folder: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_WANDB, "train", str(tiny_folder), "--runs-dir",
         str(tmp_path), "track.backend=wandb"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "pip install 'cnnlab[wandb]'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_session_never_reuses_the_folder_of_one_opened_the_same_second(tmp_path: Path) -> None:
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    (tmp_path / f"offline-run-{stamp}-abc").mkdir()
    wait_for_fresh_folder(tmp_path, "abc")
    assert datetime.now().strftime("%Y%m%d_%H%M%S") != stamp
