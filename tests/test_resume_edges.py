"""``cnnlab train --resume`` on the run folders crashes and kills leave behind.

Each test copies one small trained run and damages the copy the way a tester found it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import write_folder

import cnnlab
from cnnlab.runs import Run

TINY = {"model__cnn__filters": [8, 16], "batch_size": 4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A finished 2-epoch run, and the environment its cache lives in."""
    base = tmp_path_factory.mktemp("resume-edges")
    data = write_folder(base / "data", classes=3, per_class=12)
    env = dict(os.environ, CNNLAB_CACHE=str(base / "cache"), COLUMNS="200", NO_COLOR="1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", env["CNNLAB_CACHE"])
        run = cnnlab.train(data, epochs=2, runs_dir=base / "runs", name="base", **TINY)
    assert run is not None
    return run.path, env


def copy_run(trained: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / "runs" / "copy"))


def resume(env: dict[str, str], run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "--resume", str(run), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    return out


def epochs(run: Path) -> list[int]:
    return [int(r["epoch"]) for r in Run(run).metrics()]


@pytest.mark.slow
def test_a_damaged_last_with_no_predecessor_goes_on_from_the_complete_best(
    trained: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    checkpoints = run / "checkpoints"
    last = checkpoints / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    (checkpoints / "last-prev.ckpt").unlink()
    out = resume(trained[1], run, "--epochs", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"checkpoint incomplete: {last} (PytorchStreamReader failed" in out.stderr
    assert "resuming from the best epoch's checkpoint, which holds the full training state" in (
        out.stderr
    )
    assert epochs(run) == [1, 2, 3] and Run(run).summary["epochs_run"] == 3


@pytest.mark.slow
def test_a_run_with_no_checkpoint_says_it_starts_again_from_epoch_1(
    trained: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    for name in ("checkpoints", "summary.json", "model.safetensors", "model.json"):
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    out = resume(trained[1], run, "--quiet")  # a warning: shown even with --quiet
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        f"warning: {run} has no checkpoint (it stopped before its first epoch ended): "
        "training starts again from epoch 1"
    ) in out.stderr
    assert epochs(run) == [1, 2]


@pytest.mark.slow
def test_resume_removes_the_temp_files_a_killed_save_left(
    trained: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    checkpoints = run / "checkpoints"
    left = [checkpoints / ".last.ckpt.actl5hch.tmp", run / ".metrics.csv.k2j_9xq0.tmp"]
    for path in left:
        path.write_bytes(b"\0" * 132_800)  # a save cut off by SIGKILL
    kept = [run / "notes.tmp", checkpoints / "mine.ckpt", run / ".track.json.ab12cd34.tmp"]
    for path in kept:
        path.write_bytes(b"the user's, or the tracker's")
    out = resume(trained[1], run, "--epochs", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"removed 2 temp file(s) that a killed save left in {run}" in out.stdout
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "best.ckpt", "last-prev.ckpt", "last.ckpt", "mine.ckpt",
    ]  # fmt: skip


@pytest.mark.slow
def test_repeating_the_lr_the_run_resolved_is_accepted_and_another_is_refused(
    trained: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    assert Run(run).config["train"]["lr"] is None and Run(run).summary["lr"] == 0.05  # auto
    refused = resume(trained[1], run, "--lr", "0.1")
    assert refused.returncode == 2
    assert "cannot change train.lr (auto: the run trained with 0.05 -> 0.1)" in refused.stderr
    for name in ("summary.json", "model.safetensors"):  # killed: the lr comes from the defaults
        (run / name).unlink()
    out = resume(trained[1], run, "--lr", "0.05", "--mode", "scratch", "--epochs", "3")
    assert out.returncode == 0, out.stdout + out.stderr
    assert epochs(run) == [1, 2, 3]
    assert Run(run).config["train"]["lr"] is None and Run(run).config["model"]["mode"] is None
