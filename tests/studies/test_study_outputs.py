"""A study's outputs as explore_d found them wanting: where a study or a tune writes (never in
the dataset), retrying failed runs on resume, and what a seed-independent cell is said to show."""

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
from tests.conftest import folder_digest, write_folder
from tests.studies.conftest import TINY, cli, read_csv


def _one_error_line(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    return lines[0]


def _study(data: Path, out: Path) -> list[str]:
    return ["study", str(data), "--vary", "train.lr=1e-3,1e-2", "--seeds", "1",
            "--out", str(out), "--track", "none", *TINY]  # fmt: skip


def test_study_and_tune_refuse_an_out_folder_inside_the_dataset(tmp_path: Path) -> None:
    """``study --out DATA/sub`` wrote study.yaml into the dataset, then failed on "class folder
    'sub' has no image files" and left the folder, breaking every later scan of the dataset;
    ``tune --out DATA/x`` failed the same misleading way. Both are now refused before any
    work, by the check train applies to --runs-dir, through a link to the dataset too."""
    data = write_folder(tmp_path / "my data", classes=2, per_class=6)
    (tmp_path / "link").symlink_to(data, target_is_directory=True)
    before = folder_digest(data)
    for out in (data / "sub", data / "class_0" / "deep" / "st", tmp_path / "link" / "sub"):
        line = _one_error_line(cli(*_study(data, out)))
        assert "--out" in line and "inside the dataset folder" in line, line
        tune = ["tune", str(data), "--trials", "1", "--epochs", "1", "--out", str(out)]
        line = _one_error_line(cli(*tune, "--track", "none", *TINY[:1]))
        assert "--out" in line and "inside the dataset folder" in line, line
    assert folder_digest(data) == before
    assert sorted(p.name for p in data.iterdir()) == ["class_0", "class_1"]


def test_a_default_study_or_tune_folder_moves_beside_the_dataset(
    tmp_path: Path, monkeypatch
) -> None:
    """Run from inside the dataset, the default ``studies/…`` and ``tunes/…`` go beside it."""
    from cnnlab.studies.folder import study_folder
    from cnnlab.tuning.tune import _tune_folder, make_settings

    data = write_folder(tmp_path / "ds", classes=2, per_class=6)
    monkeypatch.chdir(data / "class_0")
    folder = study_folder(None, "lr", str(data))
    assert folder.parent == tmp_path / "studies" and folder.name.startswith("lr-")
    settings = make_settings(str(data), "cnn", trials=1, epochs=1)
    assert _tune_folder(None, settings) == tmp_path / "tunes" / "cnn"


def test_a_study_the_data_refuses_leaves_no_half_made_folder(tmp_path: Path) -> None:
    """A study whose scan failed left study.yaml behind, so the same command, once the data
    was fixed, was refused as "already exists and is not empty; --resume" (and a resume then
    met no split). The folder is removed again (an empty one given is left empty)."""
    data = write_folder(tmp_path / "ds", classes=2, per_class=6)
    (data / "empty class").mkdir()
    (tmp_path / "given").mkdir()
    for out in (tmp_path / "new" / "st", tmp_path / "given"):
        line = _one_error_line(cli(*_study(data, out)))
        assert "'empty class' has no image files" in line, line
    assert not (tmp_path / "new" / "st").exists()
    assert list((tmp_path / "given").iterdir()) == []


PLAN = """
seeds: 1
set: {model.name: tiny_cnn, train.scheduler: none, train.optimizer: sgd}
cells:
  - {label: slow, set: {train.lr: 0.02}}
  - {label: fast, set: {train.lr: 0.05}}
  - {label: exploding, set: {train.lr: 1.0e+6}}
"""


def _statuses(out: Path) -> dict[str, tuple[str, str]]:
    _, rows = read_csv(out / "results.csv")
    return {row["run_dir"].split("/")[-1]: (row["status"], row["reason"]) for row in rows}


@pytest.mark.slow
def test_resume_trains_again_a_run_that_failed_on_a_missing_file_once_it_is_back(tmp_path):
    """Explore_d finding F: a run failed on a file missing from the saved split ("restore them
    or make a new split"); after restoring it, `--resume` repeated the recorded failure and
    trained nothing, so the study could never finish. Now `--resume` trains again every failed
    run but a diverged one (the setting's own result, kept), and the failure says so."""
    data = write_folder(tmp_path / "data", classes=3, per_class=10, size=16)
    before = folder_digest(data)
    (tmp_path / "plan.yaml").write_text(PLAN, encoding="utf-8")
    out, runs = tmp_path / "study", tmp_path / "study" / "runs"
    args = ["study", str(data), "--plan", str(tmp_path / "plan.yaml"), "--out", str(out),
            "--track", "none", *TINY, "train.epochs=10"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", *args], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not any(runs.glob("*/summary.json")):  # one run finished: kill the study
            assert proc.poll() is None and time.monotonic() < deadline, "no run finished"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    image = data / "class_1" / "img_000.png"
    kept = image.read_bytes()
    image.unlink()

    missing = cli("study", "--resume", str(out))
    assert missing.returncode == 0, missing.stdout[-3000:] + missing.stderr[-3000:]
    failed = {n for n, (st, why) in _statuses(out).items() if "class_1/img_000.png" in why}
    assert failed and all(_statuses(out)[n][0] == "failed" for n in failed)
    text = " ".join(missing.stdout.split())
    assert f"(once fixed, `cnnlab study --resume {out}` trains it again)" in text
    assert "`cnnlab study --resume DIR` trains those runs again" in text

    image.write_bytes(kept)  # the user follows the advice
    assert folder_digest(data) == before
    again = cli("study", "--resume", str(out))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    retried = f"training again {len(failed)} failed run(s): {', '.join(sorted(failed))}"
    assert retried in again.stdout
    statuses = _statuses(out)
    assert statuses["c1-seed42"][0] == statuses["c2-seed42"][0] == "done", statuses
    assert statuses["c3-seed42"][0] == "failed" and "training diverged" in statuses["c3-seed42"][1]
    _, table = read_csv(out / "table.csv")
    assert [row["n"] for row in table] == ["1", "1", "0"]

    diverged = (runs / "c3-seed42" / "failed.json").stat().st_mtime_ns
    third = cli("study", "--resume", str(out))
    assert third.returncode == 0 and "training again" not in third.stdout, third.stdout[-3000:]
    assert (runs / "c3-seed42" / "failed.json").stat().st_mtime_ns == diverged  # kept
    assert "trains those runs again" not in " ".join(third.stdout.split())
    assert folder_digest(data) == before


TIED_PLAN = """
seeds: 2
set: {data.img_size: 32, train.epochs: 2}
cells:
  - {label: cnn, set: {model.name: tiny_cnn}}
  - {label: frozen logreg, set: {model.name: efficientnet_lite0, model.mode: frozen,
                                 model.head: logreg}}
"""


@pytest.mark.slow
def test_a_cell_the_seed_does_not_change_gets_no_zero_width_interval(tmp_path):
    """Explore_d finding G: frozen backbone + logistic regression predicts the same for every
    seed; the table showed ``0.463 ± 0.000 [0.463, 0.463]`` as a 95% CI over seeds, no caveat."""
    data = write_folder(tmp_path / "data", classes=3, per_class=12)
    (tmp_path / "plan.yaml").write_text(TIED_PLAN, encoding="utf-8")
    out = tmp_path / "study"
    done = cli("study", str(data), "--plan", str(tmp_path / "plan.yaml"), "--out", str(out),
               "--track", "none", "eval.worst_mistakes=0", "eval.explain=false")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    probs = [(out / f"runs/c2-seed{s}/predictions/test_probs.npy").read_bytes() for s in (42, 43)]
    assert probs[0] == probs[1]  # the seed changed nothing
    _, table = read_csv(out / "table.csv")
    mean = float(table[1]["test_accuracy_mean"])
    [line] = [ln for ln in done.stdout.splitlines() if ln.strip().startswith("c2 ")]
    assert "unknown (seeds tied)" in line and f"{mean:.3f} ±" not in line, done.stdout
    sentence = "frozen logreg (c2): every seed scored the same test accuracy, so the spread"
    assert sentence in " ".join(done.stdout.split())
    assert "The runs saved the same test predictions" in " ".join(done.stdout.split())
    html = (out / "study.html").read_text(encoding="utf-8")
    assert sentence in " ".join(html.split()) and "unknown (seeds tied)" in html
    assert f"[{mean:.3f}, {mean:.3f}]" not in html and f"{mean:.3f} ± 0.000" not in html


def test_seeds_that_tied_are_told_apart_by_their_saved_predictions(tmp_path):
    """Explore_g 5: three different models at the 1.000 ceiling were said to be a setting that
    does not depend on the seed, whose repeats add no evidence. Ties of different models and
    of one model trained again now get different words; the CI stays "unknown (seeds tied)".

    The ties are made, not hoped for (tiny runs need not tie on another CPU): c1's second seed
    becomes a copy of its first (one model), then the copy's probabilities are moved while
    each image keeps its predicted class (two models, one score)."""
    data = write_folder(tmp_path / "data", classes=2, per_class=12, size=16)
    before = folder_digest(data)
    out = tmp_path / "study"
    # one cell, so the words printed about seeds that tied are about c1 alone
    done = cli("study", str(data), "--vary", "train.lr=1e-3", "--seeds", "2", "--out",
               str(out), "--track", "none", *TINY, "eval.explain=false")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = out / "runs"
    shutil.rmtree(runs / "c1-seed43")
    shutil.copytree(runs / "c1-seed42", runs / "c1-seed43")
    same = cli("study", "report", str(out))
    assert same.returncode == 0, same.stderr
    words = " ".join(same.stdout.split())
    assert "(c1): every seed scored the same test accuracy" in words, words
    assert "The runs saved the same test predictions" in words, words
    assert "The runs are different models" not in words
    # table.csv states no spread the report calls unknown (explore_i 6: it wrote std 0.0
    # and the interval [0.92, 0.92]); the mean is still there
    [row] = read_csv(out / "table.csv")[1]
    for metric in ("test_accuracy", "test_macro_f1"):
        assert [row[f"{metric}_{k}"] for k in ("std", "ci_low", "ci_high")] == ["", "", ""]
        assert float(row[f"{metric}_mean"]) >= 0.0

    probs_file = runs / "c1-seed43" / "predictions" / "test_probs.npy"
    probs = np.load(probs_file)
    onehot = np.eye(probs.shape[1], dtype=probs.dtype)[probs.argmax(1)]
    np.save(probs_file, 0.5 * probs + 0.5 * onehot)  # another model, the same predictions
    differ = cli("study", "report", str(out))
    assert differ.returncode == 0, differ.stderr
    words = " ".join(differ.stdout.split())
    assert "(c1): every seed scored the same test accuracy" in words, words
    assert "unknown (seeds tied)" in words and "The runs are different models" in words, words
    assert "add no evidence" not in words
    html = " ".join((out / "study.html").read_text(encoding="utf-8").split())
    assert "The runs are different models" in html and "unknown (seeds tied)" in html
    assert folder_digest(data) == before
