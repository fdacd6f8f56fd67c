"""``train.max_time`` holds mid-epoch, leaves time to validate, and the run still reports."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from tests.conftest import folder_digest, write_folder
from tests.engine.engine_helpers import loader, make_module, separable_images

import cnnlab
from cnnlab.engine import budget
from cnnlab.engine.budget import TimeBudget, allowed_overrun, validation_estimate
from cnnlab.engine.checkpoint import safe_load_checkpoint
from cnnlab.runs import Run

# Enough steps (300 of batch 2) that a 0.5-s budget cannot reach the end of the first epoch:
# with 40 images a class, CI's faster CPU ran 43 of 44 steps inside the budget.
PER_CLASS = 200


def _budget_run(root: Path, runs: Path, max_time: float, epochs: int = 50) -> Run:
    """``epochs`` of batch 2 under ``max_time`` seconds: the budget always ends the run."""
    run = cnnlab.train(
        root, runs_dir=str(runs), epochs=epochs, batch_size=2, train__min_steps=0,
        train__max_time=max_time, track__backend="none", eval__explain=False,
    )  # fmt: skip
    assert run is not None
    return run


def test_a_tiny_budget_stops_mid_epoch_and_the_run_still_evaluates(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", classes=3, per_class=PER_CLASS, size=16)
    before = folder_digest(root)
    run = _budget_run(root, tmp_path / "runs", 0.5)
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


def test_a_budget_stop_inside_the_only_epoch_is_reported(tmp_path: Path) -> None:
    """One epoch cut short by the budget: Lightning still counts the epoch as run, so the
    summary must learn of the stop from the guard (it said false before)."""
    root = write_folder(tmp_path / "data", classes=3, per_class=PER_CLASS, size=16)
    run = _budget_run(root, tmp_path / "runs", 0.5, epochs=1)
    step = safe_load_checkpoint(run.path / "checkpoints" / "last.ckpt")["global_step"]
    assert step < run.summary["images"]["train"] // 2  # the epoch was cut short
    assert run.summary["epochs_run"] == 1 and run.summary["stopped_by_time_budget"] is True


def _guarded_fit(cpu_train, monkeypatch, estimate_s: float) -> tuple[L.Trainer, TimeBudget]:
    """One fit under a one-hour budget whose coming validation is said to take ``estimate_s``."""
    monkeypatch.setattr(budget, "validation_estimate", lambda *_: estimate_s)
    x, y = separable_images(96)
    guard = TimeBudget(val_images=96)
    trainer = L.Trainer(
        max_epochs=5, max_time={"seconds": 3600}, callbacks=[guard], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(make_module(cpu_train, 6), loader(x, y), loader(x, y))
    return trainer, guard


def test_the_guard_stops_when_validation_would_overrun_the_budget(cpu_train, monkeypatch) -> None:
    """A validation a little longer than the hour left: stop after the very first batch, and
    validate (it ends within the allowed overrun, 5% of an hour)."""
    trainer, guard = _guarded_fit(cpu_train, monkeypatch, 3600 + 100)
    assert trainer.global_step == 1
    assert guard.last_val_s is not None and not guard.skipped_validation


def test_a_validation_far_longer_than_the_budget_is_skipped(cpu_train, monkeypatch) -> None:
    """Decided on a warm speed: the first batch (one-off costs) alone never cancels a pass."""
    trainer, guard = _guarded_fit(cpu_train, monkeypatch, 3600 + 1000)
    assert trainer.global_step == 2
    assert guard.skipped_validation and guard.last_val_s is None  # no pass ran


def test_a_run_whose_validation_cannot_fit_keeps_the_budget_and_reports(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Through ``cnnlab.train``: the partial epoch is checkpointed unvalidated, the final
    weights are evaluated on val and test, and the summary and the console say why."""
    monkeypatch.setattr(budget, "validation_estimate", lambda *_: 10_000.0)
    root = write_folder(tmp_path / "data", classes=3, per_class=40, size=16)
    before = folder_digest(root)
    run = _budget_run(root, tmp_path / "runs", 3600)
    summary = run.summary
    assert summary["complete"] and summary["stopped_by_time_budget"] is True
    assert summary["validation_skipped_by_time_budget"] is True
    assert summary["epochs_run"] == 1 and summary["best_epoch"] == 1  # the final weights
    checkpoints = run.path / "checkpoints"
    assert not (checkpoints / "best.ckpt").exists()  # nothing was validated
    assert safe_load_checkpoint(checkpoints / "last.ckpt")["global_step"] == 2
    (row,) = run.metrics()
    assert row["train/loss"] and row["val/loss"] == ""
    assert set(summary["metrics"]) == {"val", "test"}  # the wrap-up evaluates both
    assert (run.path / "report.html").is_file()
    assert "shorter than one validation pass" in " ".join(capsys.readouterr().err.split())

    # The unvalidated checkpoint extends like any other: one more epoch, now validated.
    monkeypatch.undo()
    extended = cnnlab.train(resume=str(run.path), epochs=2, track__backend="none")
    assert extended is not None
    summary = extended.summary
    assert summary["epochs_run"] == 2 and not summary["validation_skipped_by_time_budget"]
    assert [bool(row["val/loss"]) for row in extended.metrics()] == [False, True]
    assert folder_digest(root) == before


def test_after_validated_epochs_the_best_of_them_is_restored(tmp_path: Path, monkeypatch) -> None:
    """The first epoch is validated; the second's pass cannot fit: training stops in it, its
    partial state is in last.ckpt, and the run reports the validated epoch 1."""

    def estimate(images: int, per_image: float, last_val_s: float | None) -> float:
        return 0.0 if last_val_s is None else 10_000.0  # fits until a pass was measured

    monkeypatch.setattr(budget, "validation_estimate", estimate)
    root = write_folder(tmp_path / "data", classes=3, per_class=40, size=16)
    run = _budget_run(root, tmp_path / "runs", 3600)
    summary = run.summary
    assert summary["validation_skipped_by_time_budget"] is True
    assert summary["epochs_run"] == 2 and summary["best_epoch"] == 1
    steps = summary["images"]["train"] // 2
    checkpoints = run.path / "checkpoints"
    assert safe_load_checkpoint(checkpoints / "best.ckpt")["global_step"] == steps
    assert safe_load_checkpoint(checkpoints / "last.ckpt")["global_step"] == steps + 1
    first, second = run.metrics()
    assert first["val/loss"] and second["val/loss"] == "" and second["train/loss"]
    assert (run.path / "report.html").is_file()


def test_the_allowed_overrun_is_a_few_seconds_or_5_percent_of_long_budgets() -> None:
    assert allowed_overrun(10) == 5.0 and allowed_overrun(3600) == 180.0


def test_validation_estimate_prefers_the_measured_pass() -> None:
    assert validation_estimate(300, 0.01, None) == 1.0  # 300 images x 10 ms / 3
    assert validation_estimate(300, 0.01, 4.2) == 4.2
