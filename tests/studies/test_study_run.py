"""A study end to end through the CLI: the output-folder contract, a failing cell, resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.conftest import RUN_FILES, folder_digest, write_folder
from tests.studies.conftest import TINY, cli, read_csv

import cnnlab
from cnnlab.studies import stats

PLAN = """
seeds: 2
set: {train.scheduler: none, train.optimizer: sgd}
cells:
  - {label: tiny, set: {model.name: tiny_cnn, train.lr: 0.05}}
  - {label: basenet, set: {model.name: basenet, train.lr: 0.05}}
  - {label: exploding, set: {model.name: tiny_cnn, train.lr: 1.0e+6}}
"""


@pytest.mark.slow
def test_study_writes_the_contract_records_a_diverging_cell_and_compares(tmp_path):
    data = write_folder(tmp_path / "data ünï", classes=3, per_class=14)
    # the same bytes under two labels: every run's data check warns about it
    shutil.copyfile(data / "class_0" / "img_000.png", data / "class_1" / "conflict.png")
    before = folder_digest(data)
    (tmp_path / "plan.yaml").write_text(PLAN, encoding="utf-8")
    out = tmp_path / "study"
    done = cli("study", str(data), "--plan", str(tmp_path / "plan.yaml"), "--out", str(out),
               *TINY, "train.epochs=2")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert folder_digest(data) == before  # the dataset is only read
    # six runs share the dataset: its warnings are printed once, not once per run
    assert done.stderr.count("label conflict") == 1, done.stderr
    assert "repeated warning line(s) not shown again" in done.stdout
    # stdout is no terminal here (a log file, CI): a line as each run ends, before the table
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("run ")]
    assert [ln.split()[1] for ln in lines] == [f"{i}/6" for i in range(1, 7)], done.stdout
    assert sum(" done: " in ln and ", test acc " in ln and "; eta " in ln for ln in lines) == 4
    assert sum(" failed: c3 seed " in ln and "training diverged" in ln for ln in lines) == 2
    table = done.stdout.index("study: ")
    assert all(done.stdout.index(ln) < table for ln in lines)

    columns, results = read_csv(out / "results.csv")
    assert columns == [
        "cell", "label", "model.name", "train.lr", "seed", "run_dir", "status",
        "val_accuracy", "val_macro_f1", "test_accuracy", "test_macro_f1", "params",
        "trainable_params", "train_time_s", "best_epoch", "reason",
    ]  # fmt: skip
    assert len(results) == 6
    failed = [r for r in results if r["status"] == "failed"]
    assert {r["cell"] for r in failed} == {"c3"} and len(failed) == 2
    assert all("diverged" in r["reason"] for r in failed)
    for r in results:
        if r["status"] == "done":
            assert all((out / r["run_dir"] / f).is_file() for f in RUN_FILES)
            cfg = yaml.safe_load((out / r["run_dir"] / "config.yaml").read_text())
            assert Path(cfg["data"]["split_file"]) == (out / "split.csv").resolve()
            assert (out / r["run_dir"] / "split.csv").read_text() == (out / "split.csv").read_text()

    columns, table = read_csv(out / "table.csv")
    spreads = [f"{m}_{k}" for m in ("test_accuracy", "test_macro_f1")
               for k in ("mean", "std", "ci_low", "ci_high")]  # fmt: skip
    assert columns[:5] == ["cell", "label", "model.name", "train.lr", "n"]
    assert columns[5:13] == spreads
    by_cell = {row["cell"]: row for row in table}
    assert (
        by_cell["c1"]["n"] == "2" and by_cell["c3"]["n"] == "0" and by_cell["c3"]["failed"] == "2"
    )
    accs = [float(r["test_accuracy"]) for r in results if r["cell"] == "c1"]
    assert float(by_cell["c1"]["test_accuracy_mean"]) == pytest.approx(np.mean(accs))
    std = by_cell["c1"]["test_accuracy_std"]
    if accs[0] == accs[1]:  # tiny seeds can tie: then no std is known ("unknown (seeds tied)")
        assert std == ""
    else:
        assert float(std) == pytest.approx(np.std(accs, ddof=1))

    _, comps = read_csv(out / "comparisons.csv")
    assert len(comps) == 1  # the two cells that ran; the failed one cannot be compared
    (row,) = comps
    assert {row["cell"], row["reference_cell"]} == {"c1", "c2"}
    assert row["seeds"] == "2" and row["verdict"] in stats.VERDICTS
    assert float(row["diff_accuracy_ci_low"]) <= float(row["diff_accuracy"])
    assert float(row["diff_accuracy"]) <= float(row["diff_accuracy_ci_high"])
    assert float(row["p_holm"]) == pytest.approx(float(row["p_mcnemar"]))  # one test

    html = (out / "study.html").read_text(encoding="utf-8")
    assert "<img" in html and 'src="http' not in html and "<script src" not in html
    assert 'href="runs/c1-seed42/report.html"' in html
    assert "training diverged" in html
    assert "failed: training diverged" in done.stdout
    # "the best cell" only when every other cell is worse at 95%
    assert "is the best cell" not in done.stdout or "every other cell is worse" in done.stdout
    doc = yaml.safe_load((out / "study.yaml").read_text())
    assert doc["command"].startswith("cnnlab study") and "--plan" in doc["reproduce"]
    # The report is rebuilt from the folder alone.
    (out / "study.html").unlink()
    again = cli("study", "report", str(out))
    assert again.returncode == 0 and (out / "study.html").is_file()


def _wait(condition, proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"study ended before {what}: {proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _epochs(run: Path) -> int:
    file = run / "metrics.csv"
    return max(0, len(file.read_text().splitlines()) - 1) if file.is_file() else 0


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_keeps_finished_runs_and_continues_the_killed_one(tmp_path):
    data = write_folder(tmp_path / "data", classes=3, per_class=14)
    out = tmp_path / "study"
    args = [sys.executable, "-m", "cnnlab", "study", str(data), "--vary",
            "model.name=tiny_cnn,basenet", "--seeds", "1", "--out", str(out),
            *TINY, "train.epochs=12"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = out / "runs"
    finished = lambda: [p for p in runs.glob("*") if (p / "summary.json").is_file()]  # noqa: E731

    def second_mid_training() -> bool:
        if len(finished()) != 1:
            return False
        others = [p for p in runs.glob("*") if p not in finished()]
        return any((p / "checkpoints" / "last.ckpt").is_file() and _epochs(p) >= 2 for p in others)

    try:
        _wait(second_mid_training, proc, "the second run's third epoch")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    (done_run,) = finished()
    killed = next(p for p in runs.glob("*") if p != done_run)
    kept_summary = (done_run / "summary.json").stat().st_mtime_ns
    rows_before = (killed / "metrics.csv").read_text().splitlines()
    assert 3 <= len(rows_before) < 13  # header + at least 2 epochs, not all 12

    resumed = cli("study", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert (done_run / "summary.json").stat().st_mtime_ns == kept_summary  # not redone
    rows_after = (killed / "metrics.csv").read_text().splitlines()
    # Continued from its checkpoint, not restarted: the same numbers for the epochs it had
    # (an epoch logged after the last checkpoint is trained again, identically on CPU; only
    # its timing columns differ).
    head = rows_after[0].split(",").index("epoch_time_s")
    assert [r.split(",")[:head] for r in rows_after[: len(rows_before)]] == [
        r.split(",")[:head] for r in rows_before
    ]
    assert rows_after[1] == rows_before[1]  # epoch 1 (checkpointed) was not trained again
    assert [r.split(",")[0] for r in rows_after[1:]] == [str(e) for e in range(1, 13)]
    _, results = read_csv(out / "results.csv")
    assert [r["status"] for r in results] == ["done", "done"]
    assert sorted(p.name for p in runs.iterdir()) == ["c1-seed42", "c2-seed42"]


@pytest.mark.slow
def test_track_none_turns_tracking_off_as_in_train(tmp_path):
    """README: `--track none` turns tracking off; `cnnlab study` answered "No such option"."""
    data = write_folder(tmp_path / "data", classes=2, per_class=8)
    out = tmp_path / "study"
    env = dict(os.environ, CNNLAB_TRACK="mlflow", COLUMNS="200", NO_COLOR="1")  # auto: MLflow
    study = [sys.executable, "-m", "cnnlab", "study"]
    done = subprocess.run(
        [*study, str(data), "--vary", "train.lr=0.05", "--seeds", "1", "--out", str(out),
         "--track", "none", *TINY],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert yaml.safe_load((out / "study.yaml").read_text())["set"]["track.backend"] == "none"
    assert not list(out.rglob("mlflow.db")) and not list(out.rglob("mlartifacts"))
    again = subprocess.run([*study, "--resume", str(out), "--track", "mlflow"],
                           capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert again.returncode == 2 and "--track is chosen when a study starts" in again.stderr
    bad = subprocess.run([*study, str(data), "--vary", "train.lr=0.05", "--track", "nope"],
                         capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert bad.returncode == 2 and "track.backend" in bad.stderr, bad.stderr


def _ctrl_c_group() -> None:
    # A group of its own, as a terminal gives a command, with Ctrl-C's default action (a shell
    # without job control starts its children ignoring SIGINT).
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_of_a_study_with_workers_gives_only_the_studys_advice(tmp_path):
    data = write_folder(tmp_path / "data", classes=3, per_class=14)
    out = tmp_path / "study"
    args = [sys.executable, "-m", "cnnlab", "study", str(data), "--vary",
            "model.name=tiny_cnn,basenet", "--seeds", "1", "--out", str(out), "--workers", "2",
            *TINY, "train.epochs=30"]  # fmt: skip
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, preexec_fn=_ctrl_c_group)  # fmt: skip
    try:
        _wait(lambda: any(_epochs(p) >= 1 for p in out.glob("runs/*")), proc, "an epoch")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the parent and its workers
        text, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "cnnlab train --resume" not in text, text[-3000:]
    assert text.strip().splitlines()[-1] == (
        f"interrupted: {out} keeps its finished runs and the stopped run's complete epochs; "
        f"continue with: cnnlab study --resume {out}"
    )


@pytest.mark.slow
def test_two_workers_share_one_study_through_a_postgresql_storage(tmp_path, postgres_url):
    import optuna

    data = write_folder(tmp_path / "data", classes=3, per_class=10)
    out = tmp_path / "study"
    url = postgres_url.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it
    done = cli("study", str(data), "--vary", "model.name=tiny_cnn,basenet", "--seeds", "2",
               "--out", str(out), "--workers", "2", "--storage", url, *TINY)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _, results = read_csv(out / "results.csv")
    assert [r["status"] for r in results] == ["done"] * 4
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "c1-seed42", "c1-seed43", "c2-seed42", "c2-seed43",
    ]  # fmt: skip
    doc = yaml.safe_load((out / "study.yaml").read_text())
    assert "s3cret" not in (out / "study.yaml").read_text() and "***" in doc["storage"]
    from cnnlab.schedule.storage import open_storage, storage_url

    (summary,) = optuna.get_all_study_summaries(open_storage(storage_url(url, out)))
    trials = optuna.load_study(
        study_name=summary.study_name, storage=open_storage(storage_url(url, out))
    ).trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["job"] for t in complete) == [0, 1, 2, 3]  # each run once
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both processes trained
    # Joining again needs the URL (its password is not saved); then there is nothing left.
    again = cli("study", "--resume", str(out))
    assert again.returncode == 2 and "--storage" in again.stderr
    again = cli("study", "--resume", str(out), "--storage", url)
    assert again.returncode == 0 and (out / "study.html").is_file()


def test_a_cell_that_leaves_the_batch_size_shows_the_one_it_trained_with(tmp_path):
    """~25 training images, 1 epoch: the cell that sets 32 trains at 32; the cell that keeps
    the default 64 trains at 8 (train.min_steps), and the tables say so, not 64."""
    data = write_folder(tmp_path / "data", classes=3, per_class=12)
    cells = [{"label": "set", "set": {"train.batch_size": 32}}, {"label": "default", "set": {}}]
    plan = {"cells": cells}
    study = cnnlab.study(str(data), plan=plan, seeds=1, out=str(tmp_path / "study"),
                         data__img_size=16, train__epochs=1, eval__worst_mistakes=0)  # fmt: skip
    assert [r["train.batch_size"] for r in study.results] == ["32", "8"]
    assert [r["train.batch_size"] for r in study.table] == ["32", "8"]


@pytest.mark.slow
def test_a_storage_lost_mid_study_is_one_line_and_resume_goes_on(tmp_path, own_postgres):
    """As for a tune: one error line that says what is kept and the exact command to go on."""
    data = write_folder(tmp_path / "data", classes=3, per_class=30, size=16)
    out = tmp_path / "study"
    args = ["study", str(data), "--vary", "model.name=tiny_cnn,basenet", "--seeds", "1",
            "--out", str(out), "--workers", "2", "--storage", own_postgres.url,
            *TINY, "train.epochs=10", "train.batch_size=2"]  # fmt: skip
    code, stdout, stderr = own_postgres.stop_while_training(args, out / "runs")
    assert code == 2, stdout + stderr
    assert "Traceback" not in stderr + stdout, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert errors == [stderr.strip().splitlines()[-1]], stderr
    assert errors[0].startswith(f"error: storage {own_postgres.url}: lost the connection (")
    assert errors[0].endswith(f"run `cnnlab study --resume {out}` to continue"), errors[0]

    own_postgres.start()
    again = cli("study", "--resume", str(out))  # study.yaml holds the URL (no password)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    _, results = read_csv(out / "results.csv")
    assert [r["status"] for r in results] == ["done", "done"]
