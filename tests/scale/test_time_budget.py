"""``train.max_time`` holds mid-epoch, leaves time to validate, and the run still reports."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from tests.conftest import folder_digest, write_folder
from tests.engine.engine_helpers import loader, make_module, separable_images

import cnnlab
from cnnlab.engine.budget import TimeBudget, validation_estimate
from cnnlab.engine.checkpoint import safe_load_checkpoint


def test_a_tiny_budget_stops_mid_epoch_and_the_run_still_evaluates(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", classes=3, per_class=40, size=16)
    before = folder_digest(root)
    run = cnnlab.train(
        root, runs_dir=str(tmp_path / "runs"), epochs=50, batch_size=2, train__min_steps=0,
        train__max_time=0.5, track__backend="none", eval__explain=False,
    )  # fmt: skip
    assert run is not None
    summary = run.summary
    assert summary["complete"] and summary["stopped_by_time_budget"] is True
    assert summary["epochs_run"] == 1
    steps_per_epoch = summary["images"]["train"] // 2
    step = safe_load_checkpoint(run.path / "checkpoints" / "last.ckpt")["global_step"]
    assert 1 <= step < steps_per_epoch  # stopped inside the first epoch
    assert len(run.metrics()) == 1  # the partial epoch was validated and logged
    assert (run.path / "report.html").is_file()
    assert (run.path / "predictions" / "test.csv").is_file()
    assert folder_digest(root) == before


def test_the_guard_stops_when_validation_would_overrun_the_budget(cpu_train) -> None:
    """A validation estimated longer than any budget: stop after the very first batch."""
    x, y = separable_images(96)
    guard = TimeBudget(val_images=10**9)
    trainer = L.Trainer(
        max_epochs=5, max_time={"seconds": 3600}, callbacks=[guard], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(make_module(cpu_train, 6), loader(x, y), loader(x, y))
    assert trainer.global_step == 1
    assert guard.last_val_s is not None  # the partial epoch was still validated


def test_validation_estimate_prefers_the_measured_pass() -> None:
    assert validation_estimate(300, 0.01, None) == 1.0  # 300 images x 10 ms / 3
    assert validation_estimate(300, 0.01, 4.2) == 4.2
