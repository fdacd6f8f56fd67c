"""A study or tune killed with SIGKILL and resumed, and a run extended with --resume: the store
ends up holding every run, complete, with how it ended, and what the folder holds now."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import write_folder
from tests.track.track_helpers import artifact_paths, cnnlab_cli, history, runs_of

from cnnlab.api import resume_run
from cnnlab.config import load_config
from cnnlab.engine.fit import fit
from cnnlab.track import flush, parent_run
from cnnlab.track.target import default_uri

pytestmark = pytest.mark.slow
TINY = ["data.img_size=16", "eval.worst_mistakes=0", "eval.explain=false"]


def _kill_when(args: list[str], ready, what: str) -> None:
    """Start ``cnnlab ARGS``, SIGKILL it once ``ready()`` holds."""
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while not ready():
            assert proc.poll() is None, f"ended before {what}: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _complete(uri: str, runs: list) -> None:
    """Every run FINISHED, with its report and weights; a run tagged best is one of them."""
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        files = artifact_paths(uri, run.info.run_id)
        assert {"report.html", "model.safetensors", "summary.json"} <= files, run.info.run_name
        assert history(uri, run.info.run_id, "val/loss"), run.info.run_name


def test_a_killed_study_resumed_has_every_run_in_the_store(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=10, size=16)
    out = tmp_path / "study"
    runs = out / "runs"

    def second_training() -> bool:  # one run finished (its events wait in memory), one going
        done = [p for p in runs.glob("*") if (p / "summary.json").is_file()]
        going = [p for p in runs.glob("*/checkpoints/last.ckpt") if p.parents[1] not in done]
        return len(done) == 1 and bool(going)

    _kill_when(["study", str(data), "--vary", "train.lr=1e-2,5e-2", "--seeds", "1",
                "--out", str(out), "train.epochs=5", *TINY], second_training,
               "the second run's first checkpoint")  # fmt: skip
    resumed = cnnlab_cli("study", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "warning" not in resumed.stderr.lower(), resumed.stderr
    uri = default_uri(runs)  # the command waited for its tracker: no flush here
    logged = runs_of(uri)
    [top] = [r for r in logged if r.data.tags["cnnlab.kind"] == "study"]
    children = [r for r in logged if r is not top]
    assert sorted(r.info.run_name for r in children) == ["c1-seed42", "c2-seed42"]
    _complete(uri, children)
    assert top.info.status == "FINISHED"
    best = [r for r in children if r.data.tags.get("cnnlab.best") == "true"]
    assert [r.info.run_name for r in best] == [f"{top.data.tags['cnnlab.best_cell']}-seed42"]
    assert top.data.tags["cnnlab.best_run_id"] == best[0].info.run_id


def _store_runs(db: Path) -> dict[str, tuple[str, str]]:
    """Run name -> (run id, status) in an MLflow SQLite file, read as it is being written."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            rows = c.execute("SELECT name, run_uuid, status FROM runs").fetchall()
    except sqlite3.Error:  # not made yet
        return {}
    return {name: (run_id, status) for name, run_id, status in rows}


def test_a_study_run_killed_before_its_first_checkpoint_continues_its_store_run(
    tmp_path: Path,
) -> None:
    """Explore_d finding E: a run killed before its first checkpoint is trained anew, and its
    folder (track.json, the uid naming it in the store) went with it: the resumed study left the
    killed attempt's MLflow run RUNNING forever beside a FINISHED one of the same name, and
    `track log` called it up to date. Now the new attempt continues the same store run."""
    data = write_folder(tmp_path / "data", classes=3, per_class=10, size=16)
    out = tmp_path / "study"
    runs, db = out / "runs", out / "runs" / "mlflow.db"

    def second_in_store() -> bool:  # one run finished, the other's store run made (live)
        done = [p for p in runs.glob("*") if (p / "summary.json").is_file()]
        return len(done) == 1 and len(_store_runs(db)) == 3  # the study and both runs

    # The store opens only once the tracker has started (MLflow's import and schema take
    # seconds), so the second run is made long enough to still be training by then: with the
    # same 20 epochs it sometimes ended first on CI. The grid's fixed seed runs c2 first.
    _kill_when(["study", str(data), "--vary", "train.epochs=100,20", "--seeds", "1",
                "--out", str(out), "track.live_after=0", *TINY],
               second_in_store, "the second run in the store")  # fmt: skip
    [killed] = [p for p in runs.glob("c*") if not (p / "summary.json").is_file()]
    assert killed.name.startswith("c1"), f"{killed.name}: the grid's order changed"
    # As a kill before the first checkpoint leaves it (that moment is too short to hit).
    shutil.rmtree(killed / "checkpoints", ignore_errors=True)
    run_id, status = _store_runs(db)[killed.name]
    assert status == "RUNNING"
    resumed = cnnlab_cli("study", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logged = runs_of(default_uri(runs))
    children = [r for r in logged if r.data.tags["cnnlab.kind"] != "study"]
    assert sorted(r.info.run_name for r in children) == ["c1-seed42", "c2-seed42"]
    _complete(default_uri(runs), children)
    [again] = [r for r in children if r.info.run_name == killed.name]
    assert again.info.run_id == run_id
    assert [step for step, _ in history(default_uri(runs), run_id, "val/loss")] == list(
        range(1, 101)
    )
    log = cnnlab_cli("track", "log", str(killed))
    assert log.returncode == 0, log.stderr[-3000:]
    assert len(runs_of(default_uri(runs))) == 3


def test_a_killed_tune_resumed_has_every_trial_in_the_store(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "data", classes=3, per_class=10, size=16)
    out = tmp_path / "tune"
    args = ["tune", str(data), "--space", "train", "--trials", "2", "--epochs", "3",
            "--pruner", "none", "--out", str(out), *TINY]  # fmt: skip
    second = out / "trials" / "trial-0001" / "checkpoints" / "last.ckpt"
    _kill_when(args, second.exists, "the second trial's first checkpoint")
    again = cnnlab_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    uri = default_uri(out / "trials")
    logged = runs_of(uri)
    [top] = [r for r in logged if r.data.tags["cnnlab.kind"] == "tune"]
    trials = [r for r in logged if r is not top]
    assert sorted(r.info.run_name for r in trials) == ["trial-0000", "trial-0001"]
    assert top.info.status == "FINISHED"
    _complete(uri, trials)
    assert [r.data.tags.get("cnnlab.best") for r in trials].count("true") == 1


def _cfg(data: Path, runs: Path, **values: object):
    base = {"data.root": str(data), "runs_dir": str(runs), "train.epochs": 1,
            "data.img_size": 16, "eval.worst_mistakes": 0, "track.backend": "mlflow"}  # fmt: skip
    return load_config(values={**base, **values})


def test_tagging_best_a_run_the_store_lacks_logs_it_finished(tmp_path: Path) -> None:
    """Tagging must not leave a RUNNING run with no files (it did for a run trained before a
    kill): the run is logged whole first, as it ended."""
    data = write_folder(tmp_path / "data", classes=3, per_class=8, size=16)
    runs = tmp_path / "runs"
    untracked = fit(_cfg(data, runs, **{"track.backend": "none"}))
    with parent_run(_cfg(data, runs), "study", "late") as parent:
        parent.tag_best(untracked.path)
    assert flush(600)
    uri = default_uri(runs)
    [run] = [r for r in runs_of(uri) if r.info.run_name == untracked.path.name]
    assert run.data.tags["cnnlab.best"] == "true"
    _complete(uri, [run])


def test_an_extended_run_keeps_its_params_and_tags_what_changed(tmp_path: Path) -> None:
    """MLflow params are immutable: train.epochs stays as logged, resumed.train.epochs says 2."""
    data = write_folder(tmp_path / "data", classes=3, per_class=8, size=16)
    run = fit(_cfg(data, tmp_path / "runs"))
    assert flush(600)
    resume_run(run.path, values={"train.epochs": 2})
    assert flush(600)
    uri = default_uri(tmp_path / "runs")
    [logged] = runs_of(uri)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["train.epochs"] == "1"
    assert logged.data.tags["resumed.train.epochs"] == "2"
    assert "resumed.train.lr" not in logged.data.tags  # only what changed
    assert [s for s, _ in history(uri, logged.info.run_id, "val/loss")] == [1, 2]


def test_resuming_a_copied_run_folder_makes_a_run_of_its_own(tmp_path: Path) -> None:
    """``cp -r runs/t1 runs/r1; train --resume runs/r1``: the copy is logged as a new run; t1's
    store run keeps its name, folder tag and epochs (it was renamed r1 and extended)."""
    data = write_folder(tmp_path / "data", classes=3, per_class=8, size=16)
    runs = tmp_path / "runs"
    original = fit(_cfg(data, runs, name="t1"))
    assert flush(600)
    copy = Path(shutil.copytree(original.path, runs / "r1"))
    resume_run(copy, values={"train.epochs": 2})
    assert flush(600)
    uri = default_uri(runs)
    by_name = {r.info.run_name: r for r in runs_of(uri)}
    assert sorted(by_name) == ["r1", "t1"]
    t1, r1 = by_name["t1"], by_name["r1"]
    assert t1.data.tags["cnnlab.run_dir"].endswith("t1")
    assert [s for s, _ in history(uri, t1.info.run_id, "val/loss")] == [1]
    assert [s for s, _ in history(uri, r1.info.run_id, "val/loss")] == [1, 2]
    assert r1.info.status == "FINISHED"
    resume_run(original.path, values={"train.epochs": 2})  # the original keeps its record
    assert flush(600)
    assert len(runs_of(uri)) == 2
    assert [s for s, _ in history(uri, t1.info.run_id, "val/loss")] == [1, 2]
