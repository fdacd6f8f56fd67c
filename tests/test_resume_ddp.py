"""Issue 5 through the real entry points: kill -9 and resume, DDP, time budget, lr-find, early
stopping. Every test runs ``python -m cnnlab`` in a subprocess on a tiny generated folder."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.conftest import RUN_FILES, write_folder

from cnnlab.engine.checkpoint import safe_load_checkpoint

CNNLAB = [sys.executable, "-m", "cnnlab"]
TINY = ("model.cnn.filters=[8,16]", "train.batch_size=4")  # ~10 steps per epoch, fast
# Resume runs take ~20 steps per epoch so that a kill lands well before the last epoch.
RESUMABLE = ("model.cnn.filters=[8,16]", "train.batch_size=2")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 20 images of 32 px, shared by every test in this module (read-only)."""
    return write_folder(tmp_path_factory.mktemp("data") / "images", classes=3, per_class=20)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One cache for the module, so only the first subprocess scans and decodes the images."""
    cache = str(tmp_path_factory.mktemp("cache"))
    return dict(os.environ, COLUMNS="200", NO_COLOR="1", CNNLAB_CACHE=cache, CNNLAB_OFFLINE="1")


def cli(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([*CNNLAB, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def train_args(data: Path, runs: Path, name: str, *extra: str) -> tuple[str, ...]:
    """The same seeded, default-shuffled, augmented 6-epoch run for every resume test."""
    args = ("train", str(data), "--epochs", "6", "--seed", "7", *RESUMABLE)
    return (*args, "--runs-dir", str(runs), "--name", name, *extra)


def metric_rows(run: Path) -> list[dict[str, str]]:
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_complete(run: Path, epochs: int) -> dict:
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert [int(r["epoch"]) for r in metric_rows(run)] == list(range(1, epochs + 1))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is True
    return summary


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"weights differ: {differ}"


def best_checkpoint_weights(run: Path) -> dict[str, torch.Tensor]:
    state = safe_load_checkpoint(run / "checkpoints" / "best.ckpt")["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def start_and_kill(env: dict[str, str], args: tuple[str, ...], run: Path) -> None:
    """Start training, SIGKILL it once >= 3 epochs are done (>= 2 checkpointed), mid-run."""
    proc = subprocess.Popen(
        [*CNNLAB, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    prev = run / "checkpoints" / "last-prev.ckpt"  # exists once `last` was saved twice
    deadline = time.monotonic() + 180
    try:
        while not (prev.is_file() and len(metric_rows(run)) >= 3):
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no second epoch within 180 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (run / "summary.json").exists()
    assert 3 <= len(metric_rows(run)) < 6, "the kill must land in the middle of the run"


@pytest.fixture(scope="module")
def reference(data_dir: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """The uninterrupted run every resumed run must reproduce bit for bit."""
    runs = tmp_path_factory.mktemp("reference")
    out = cli(env, *train_args(data_dir, runs, "ref"), "--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert_complete(runs / "ref", 6)
    return runs / "ref"


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(
    data_dir: Path, env: dict[str, str], reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "runs" / "k"
    start_and_kill(env, train_args(data_dir, tmp_path / "runs", "k"), run)
    # An intact copy of the killed run, moved to another folder (as to another machine).
    moved = tmp_path / "elsewhere" / "k-copy"
    shutil.copytree(run, moved)

    # In place, with the newest checkpoint cut in half: falls back to the later of last-prev
    # and best (best is the newer one when the kill came right after a best epoch's save).
    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():  # the kill fell between a save's two renames: damage a copy
        shutil.copyfile(last.with_name("last-prev.ckpt"), last)
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    epochs = {
        name: safe_load_checkpoint(last.with_name(name))["epoch"]
        for name in ("last-prev.ckpt", "best.ckpt")
        if last.with_name(name).is_file()
    }
    expected = max(epochs, key=lambda name: epochs[name])  # the first of equals: last-prev
    out = cli(env, "train", "--resume", str(run), "--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    message = " ".join(out.stderr.split())  # rich may wrap the warning
    assert "checkpoint incomplete" in message and f"{expected} (epoch" in message
    summary = assert_complete(run, 6)
    assert summary["epochs_run"] == 6
    assert_same_weights(run / "model.safetensors", reference / "model.safetensors")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["k"]

    # Resuming a finished run says so and leaves the folder as it is.
    before = {p: (run / p).read_bytes() for p in ("summary.json", "model.safetensors")}
    again = cli(env, "train", "--resume", str(run))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already finished" in again.stdout
    assert {p: (run / p).read_bytes() for p in before} == before

    # The moved copy resumes from its last.ckpt and keeps its best-epoch record.
    out = cli(env, "train", "--resume", str(moved), "--quiet")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in out.stderr
    assert_complete(moved, 6)
    assert_same_weights(moved / "model.safetensors", reference / "model.safetensors")


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_complete_run(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    out = cli(
        env, "train", str(data_dir), "--epochs", "2", *TINY, "--runs-dir", str(runs),
        "--name", "d", "train.accelerator=cpu", "train.devices=2", "train.strategy=ddp",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert [p.name for p in runs.iterdir()] == ["d"]
    run = runs / "d"
    summary = assert_complete(run, 2)
    assert summary["epochs_run"] == 2
    for name in ("predictions/val.csv", "predictions/test.csv", "plots/learning_curves.png"):
        assert (run / name).is_file(), name
    # Evaluation and the report ran once (rank 0, the command's own process) ...
    assert out.stdout.count("run folder:") == 1 and out.stdout.count("report:") == 1
    # ... on the trained weights: the best epoch's, as every single-process run.
    final = load_file(run / "model.safetensors")
    best = best_checkpoint_weights(run)
    assert final.keys() == best.keys()
    assert all(torch.equal(final[k], best[k]) for k in final)


@pytest.mark.slow
def test_time_budget_stops_cleanly_with_a_complete_run(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    started = time.monotonic()
    out = cli(
        env, "train", str(data_dir), "--epochs", "500", *TINY, "train.max_time=3",
        "--runs-dir", str(runs), "--name", "budget", "--quiet",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started < 120
    summary = json.loads((runs / "budget" / "summary.json").read_text())
    assert summary["stopped_by_time_budget"] is True and summary["stopped_early"] is False
    assert 1 <= summary["epochs_run"] < 500
    assert_complete(runs / "budget", summary["epochs_run"])


def test_lr_find_prints_a_rate_and_writes_the_plot(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    plot = tmp_path / "lr.png"
    out = cli(env, "lr-find", str(data_dir), "--steps", "30", "--out", str(plot), *TINY)
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"suggested learning rate: ([0-9.e+-]+)", out.stdout)
    assert found, out.stdout
    assert 1e-6 <= float(found.group(1)) <= 1.0  # inside the tested range
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epoch(
    data_dir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    out = cli(
        env, "train", str(data_dir), "--epochs", "12", *TINY, "train.early_stopping=true",
        "train.patience=1", "--runs-dir", str(runs), "--name", "es", "--quiet",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    run = runs / "es"
    summary = json.loads((run / "summary.json").read_text())
    # val/macro_f1 of 8 images saturates within a few epochs, so patience 1 must trigger
    assert summary["stopped_early"] is True and summary["epochs_run"] < 12
    rows = assert_complete(run, summary["epochs_run"]) and metric_rows(run)
    scores = {int(r["epoch"]): float(r["val/macro_f1"]) for r in rows}
    assert scores[summary["best_epoch"]] == max(scores.values())
    final = load_file(run / "model.safetensors")
    best = best_checkpoint_weights(run)
    assert final.keys() == best.keys()
    assert all(torch.equal(final[k], best[k]) for k in final)
