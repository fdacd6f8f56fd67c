"""Issue 10 item 9: resuming and extending runs through the public API and CLI.

Every test trains real (tiny) runs in-process with ``cnnlab.train``; the flag refusals go
through the Typer app itself, so every CLI flag is checked the way a user passes it.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from tests.conftest import write_folder
from typer.testing import CliRunner

import cnnlab
from cnnlab.cli import app
from cnnlab.engine.checkpoint import safe_load_checkpoint
from cnnlab.engine.optim import SCHEDULERS
from cnnlab.errors import ConfigError
from cnnlab.summary import run_rows

SMALL = {"model": "cnn", "model__cnn__filters": [8, 16], "precision": "32"}


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text(encoding="utf-8"))


def backbone(run: Path) -> dict[str, torch.Tensor]:
    state = safe_load_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("model.backbone.")}


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_extending_a_finished_run_works_with_every_scheduler(
    scheduler: str, tiny_folder: Path, tmp_path: Path
) -> None:
    """onecycle and cosine are rebuilt for the new length; the others simply go on."""
    common = {
        **SMALL, "scheduler": scheduler, "runs_dir": str(tmp_path / "runs"),
        "train__warmup_epochs": 1, "train__step_size": 1, "train__milestones": [1, 2],
    }  # fmt: skip
    run = cnnlab.train(str(tiny_folder), epochs=2, name="short", **common)
    assert run is not None and summary(run.path)["epochs_run"] == 2
    extended = cnnlab.train(resume=run.path, epochs=3)
    assert extended is not None and extended.path == run.path
    assert [r["epoch"] for r in rows(run.path)] == ["1", "2", "3"]
    assert summary(run.path)["epochs_run"] == 3 and summary(run.path)["complete"] is True
    if scheduler in ("onecycle", "cosine"):
        # The extended run's third epoch follows the schedule of a 3-epoch run exactly.
        fresh = cnnlab.train(str(tiny_folder), epochs=3, name="fresh", **common)
        assert fresh is not None
        assert float(rows(run.path)[2]["lr"]) == pytest.approx(
            float(rows(fresh.path)[2]["lr"]), rel=1e-5
        )


@pytest.mark.slow
def test_resumed_staged_run_unfreezes_the_backbone(tiny_folder: Path, tmp_path: Path) -> None:
    run = cnnlab.train(
        str(tiny_folder), **SMALL, mode="staged", pretrained=False, epochs=2,
        train__freeze_epochs=1, runs_dir=str(tmp_path / "runs"),
    )  # fmt: skip
    assert run is not None
    before = backbone(run.path)
    cnnlab.train(resume=run.path, epochs=3)  # starts at epoch 3, past the switch at 2
    after = backbone(run.path)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.endswith(".weight") for k in changed), "the backbone did not train in epoch 3"


@pytest.mark.slow
def test_train_time_counts_every_segment(tiny_folder: Path, tmp_path: Path) -> None:
    run = cnnlab.train(str(tiny_folder), **SMALL, epochs=3, runs_dir=str(tmp_path / "runs"))
    assert run is not None
    first = summary(run.path)["train_time_s"]
    cnnlab.train(resume=run.path, epochs=4)
    total = summary(run.path)["train_time_s"]
    epochs = sum(float(r["epoch_time_s"]) for r in rows(run.path))
    assert total > first
    assert total >= epochs - 0.05  # 0.05 s: the epoch clocks stop after the checkpoint


@pytest.mark.slow
def test_a_resumed_or_copied_run_keeps_its_creation_time(tiny_folder: Path, tmp_path: Path) -> None:
    """`cnnlab runs` took "created" from config.yaml's modification time, which a resume
    rewrites: an extended run moved behind runs made after it, and a copy without -p got
    the copy's time. summary.json now records it, and a resume keeps it."""
    runs_dir = tmp_path / "runs"
    first = cnnlab.train(str(tiny_folder), **SMALL, epochs=1, runs_dir=str(runs_dir), name="a")
    assert first is not None
    created = summary(first.path)["created"]
    time.sleep(1.1)  # the time is kept to the second
    cnnlab.train(str(tiny_folder), **SMALL, epochs=1, runs_dir=str(runs_dir), name="b")
    time.sleep(1.1)
    cnnlab.train(resume=first.path, epochs=2)
    assert summary(first.path)["epochs_run"] == 2 and summary(first.path)["created"] == created
    listed = run_rows(runs_dir)  # default: by creation, oldest first
    assert [r["name"] for r in listed] == ["a", "b"] and listed[0]["created"] == created
    copies = tmp_path / "copies"
    shutil.copytree(first.path, copies / "a", copy_function=shutil.copy)  # new mtimes
    assert run_rows(copies)[0]["created"] == created


@pytest.mark.slow
def test_a_csv_manifest_run_resumes(tmp_path: Path) -> None:
    """Images in one flat folder, labels only in the manifest: the folder alone is no dataset."""
    source = write_folder(tmp_path / "src", classes=3, per_class=12)
    flat = tmp_path / "shop" / "images"
    flat.mkdir(parents=True)
    lines = ["path,label"]
    for image in sorted(source.rglob("*.png")):
        name = f"{image.parent.name}-{image.name}"
        (flat / name).write_bytes(image.read_bytes())
        lines.append(f"images/{name},{image.parent.name}")
    manifest = tmp_path / "shop" / "labels.csv"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = cnnlab.train(str(manifest), **SMALL, epochs=2, runs_dir=str(tmp_path / "runs"))
    assert run is not None
    cnnlab.train(resume=run.path, epochs=3)
    assert [r["epoch"] for r in rows(run.path)] == ["1", "2", "3"]
    assert summary(run.path)["epochs_run"] == 3


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch run to resume (read-only for the tests below)."""
    base = tmp_path_factory.mktemp("resume")
    data = write_folder(base / "data", classes=3, per_class=12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(base / "cache"))
        run = cnnlab.train(str(data), **SMALL, epochs=1, runs_dir=str(base / "runs"), name="r")
    assert run is not None
    return run.path


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "resnet18"],
        ["--mode", "frozen"],
        ["--img-size", "40"],
        ["--batch-size", "4"],
        ["--lr", "0.5"],
        ["--seed", "3"],
        ["--name", "other"],
        ["--runs-dir", "elsewhere"],
        ["train.optimizer=adam"],
        ["--epochs", "3", "data.augment=none"],
    ],
)
def test_resume_refuses_what_it_cannot_honour(finished: Path, args: list[str]) -> None:
    before = (finished / "summary.json").read_bytes()
    result = CliRunner().invoke(app, ["train", "--resume", str(finished), *args])
    assert isinstance(result.exception, ConfigError), result.output
    assert "--resume cannot change" in str(result.exception)
    assert (finished / "summary.json").read_bytes() == before
    assert [p.name for p in finished.parent.iterdir()] == ["r"]


def test_resume_refuses_another_dataset_or_config_file(finished: Path, tmp_path: Path) -> None:
    other = write_folder(tmp_path / "other", classes=3, per_class=12)
    result = CliRunner().invoke(app, ["train", str(other), "--resume", str(finished)])
    assert isinstance(result.exception, ConfigError) and "own dataset" in str(result.exception)
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: 0.1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--resume", str(finished), "-c", str(config)])
    assert isinstance(result.exception, ConfigError) and "--config" in str(result.exception)


def test_resume_accepts_the_saved_values(finished: Path) -> None:
    """Repeating the original flags is no change: the finished run is simply reported."""
    saved = cnnlab.load(str(finished)).card["create_kwargs"]["name"]
    result = CliRunner().invoke(
        app, ["train", "--resume", str(finished), "--model", saved, "--seed", "42"]
    )
    assert result.exception is None, result.output
    assert "already finished" in result.output
    assert "drawing the figures" not in result.output  # nothing is drawn again
