"""cnnlab tune end to end on the default SQLite storage: trials, results, pruning, resume,
best.yaml and --retrain-best."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import pytest
import yaml
from tests.conftest import RUN_FILES, folder_digest
from tests.studies.conftest import cli, read_csv
from tests.tune.conftest import TINY, TINY_ARGS, lr_space

import cnnlab
from cnnlab.tuning.tune import Tuning


@pytest.mark.slow
def test_pruned_and_diverged_trials_are_never_best_and_the_best_retrains(
    small_folder, tmp_path, capsys
):
    before = folder_digest(small_folder)
    out = tmp_path / "tune"
    # trials train 3 epochs (--epochs); train.epochs is the "full" length a retrain uses
    t = cnnlab.tune(small_folder, space=str(lr_space(tmp_path)), sampler="grid", trials=10,
                    epochs=3, out=str(out), train__epochs=5, **TINY)  # fmt: skip
    assert folder_digest(small_folder) == before  # the user's data is read-only to us
    rows = {int(r["number"]): r for r in t.trials}
    assert len(rows) == 3  # the grid has three points, so --trials 10 becomes 3
    assert [rows[i]["state"] for i in range(3)] == ["COMPLETE", "PRUNED", "FAIL"]
    assert rows[1]["reason"].startswith("pruned (median) after epoch")
    assert int(rows[1]["epochs"]) < 3 and rows[1]["val/macro_f1"] == ""
    assert "diverged" in rows[2]["reason"]
    # a line as each trial ends: without a terminal, the bar shows nothing until the end
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("trial ")]
    assert [ln.split(":")[0] for ln in lines] == [
        "trial 0 (1/3) complete", "trial 1 (2/3) pruned (median) after epoch 1",
        "trial 2 (3/3) failed",
    ], lines  # fmt: skip
    assert "training diverged" in lines[2] and all("; eta " in ln for ln in lines)
    assert t.best["trial"] == 0 and t.best_params == {"train.lr": 0.002}
    for name in RUN_FILES:  # every trial is an ordinary run folder
        assert (out / rows[0]["run_dir"] / name).exists(), name
    assert (out / rows[1]["run_dir"] / "summary.json").is_file()  # pruned: stopped, reported
    html = (out / "tune.html").read_text(encoding="utf-8")
    assert html.count('<script type="text/javascript">') == 1  # plotly inline, once
    assert "<script src=" not in html and "Optimisation history" in html  # self-contained
    assert "Plotly.newPlot" in html and "cnnlab tune " in html
    cfg = yaml.safe_load((out / "best.yaml").read_text(encoding="utf-8"))
    assert cfg["train"]["lr"] == 0.002 and cfg["data"]["split_file"] == str(out / "split.csv")
    # the retrain length decided after the search: the same command, another train.epochs
    trials_csv = (out / "trials.csv").read_bytes()
    cnnlab.tune(small_folder, space=str(lr_space(tmp_path)), sampler="grid", trials=10,
                epochs=3, out=str(out), train__epochs=1, **TINY)  # fmt: skip
    assert (out / "trials.csv").read_bytes() == trials_csv  # no trial trained again
    _best_trains_and_retrains(t, tmp_path / "runs")


def _best_trains_and_retrains(t: Tuning, runs: Path) -> None:
    """best.yaml trains with `cnnlab train`; --retrain-best is a study on the tune's split."""
    proc = cli("train", "--config", str(t.best_config), "--runs-dir", str(runs), "--name", "b",
               "--epochs", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (runs / "b" / "summary.json").is_file()
    study = t.retrain_best(seeds=2)
    assert study.path == t.path / "retrain-best"
    assert [r["seed"] for r in study.results] == ["42", "43"]
    assert len(study.table) == 1 and study.table[0]["label"] == f"best trial {t.best['trial']}"
    split = (t.path / "split.csv").read_bytes()
    for run in study.run_dirs:
        assert (run / "split.csv").read_bytes() == split  # the tune's split, exactly
        assert '"epochs_run": 1' in (run / "summary.json").read_text()  # train.epochs, not 3
    assert all(r["train.lr"] == "0.002" for r in study.results)


def test_a_pruned_trial_says_so_in_its_summary_report_and_the_runs_table(small_folder, tmp_path):
    """Explore_i 12: a pruned trial's summary.json, report.html and ``cnnlab runs`` row read
    like an ordinary finished 1-epoch run (its test accuracy beside the tune's best); only
    trials.csv and tune.html said it was pruned."""
    before = folder_digest(small_folder)
    out = tmp_path / "tune"
    # grid order: lr 2e-3 (learns, sets the bar), then lr 1e-9 (learns nothing: pruned)
    t = cnnlab.tune(small_folder, space=str(lr_space(tmp_path)), sampler="grid", trials=2,
                    epochs=2, out=str(out), **TINY)  # fmt: skip
    rows = {int(r["number"]): r for r in t.trials}
    assert [rows[i]["state"] for i in range(2)] == ["COMPLETE", "PRUNED"]
    reason = rows[1]["reason"]  # the tune's own words, as before
    assert reason.startswith("pruned (median) after epoch 1: val/macro_f1="), reason
    kept, pruned = (out / rows[i]["run_dir"] for i in range(2))
    record = json.loads((pruned / "summary.json").read_text(encoding="utf-8"))["pruned"]
    assert {k: record[k] for k in ("by", "after_epoch", "of_epochs", "metric")} == {
        "by": "median", "after_epoch": 1, "of_epochs": 2, "metric": "val/macro_f1"
    }  # fmt: skip
    assert reason == f"pruned (median) after epoch 1: val/macro_f1={record['value']:.4g}"
    assert "pruned" not in json.loads((kept / "summary.json").read_text(encoding="utf-8"))
    html = " ".join(unescape((pruned / "report.html").read_text(encoding="utf-8")).split())
    assert "Pruned: a tune's median pruner stopped this trial after epoch 1 of 2" in html
    assert "not of this setting trained in full" in html
    assert "Pruned:" not in (kept / "report.html").read_text(encoding="utf-8")
    listed = cli("runs", "--runs-dir", str(out / "trials"))
    assert listed.returncode == 0, listed.stderr
    lines = {ln.split()[0]: ln for ln in listed.stdout.splitlines() if "trial-" in ln}
    assert " 1 pruned " in lines[pruned.name] and "pruned" not in lines[kept.name], lines
    assert "pruned = a tune's pruner stopped the trial early" in listed.stdout
    assert folder_digest(small_folder) == before


def test_bad_space_is_refused_before_any_trial(small_folder, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  train.lr: {type: float, low: 0, high: 0.1, log: true}\n")
    out = tmp_path / "never"
    proc = cli("tune", str(small_folder), "--space", str(bad), "--out", str(out))
    assert proc.returncode == 2
    assert "entry 'train.lr'" in proc.stderr and "low > 0" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_tune_resumes_until_n_trials_in_total(small_folder, tmp_path):
    out = tmp_path / "tune"
    args = ["tune", str(small_folder), "--space", "train", "--trials", "2", "--epochs", "3",
            "--pruner", "none", "--out", str(out), *TINY_ARGS]  # fmt: skip
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:  # kill it in the middle of its second trial, after a checkpoint
        _wait_for(out / "trials" / "trial-0001" / "checkpoints" / "last.ckpt", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    _, rows = read_csv(out / "trials.csv")
    finished = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(finished) == 2  # N in total over both invocations
    dead = [r for r in rows if r["state"] == "FAIL"]
    assert [r["run_dir"] for r in dead] == ["trials/trial-0001"]
    assert "worker stopped" in dead[0]["reason"]
    # the retry (trial 2) resumed trial 1's run folder and finished it; no third trial
    assert {r["number"]: r["run_dir"] for r in finished} == {
        "0": "trials/trial-0000", "2": "trials/trial-0001"
    }  # fmt: skip
    assert not (out / "trials" / "trial-0002").exists()


def test_each_trial_trains_with_the_batch_size_it_sampled(small_folder, tmp_path):
    """~50 training images, 1 epoch: train.min_steps would lower any batch to 8, but a sampled
    batch size is a choice, so trials.csv, each trial's config.yaml and best.yaml agree."""
    space = {"params": {"train.batch_size": {"type": "categorical", "choices": [16, 32]}}}
    out = tmp_path / "tune"
    t = cnnlab.tune(small_folder, space=space, sampler="grid", pruner="none", trials=2,
                    epochs=1, out=str(out), **TINY)  # fmt: skip
    rows = [r for r in t.trials if r["state"] == "COMPLETE"]
    assert sorted(int(r["train.batch_size"]) for r in rows) == [16, 32]
    for r in rows:
        cfg = yaml.safe_load((out / r["run_dir"] / "config.yaml").read_text(encoding="utf-8"))
        assert cfg["train"]["batch_size"] == int(r["train.batch_size"])
    best = yaml.safe_load(t.best_config.read_text(encoding="utf-8"))
    assert best["train"]["batch_size"] == t.best_params["train.batch_size"]
