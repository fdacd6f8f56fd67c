"""The tracking process starts when a run ends, or once it has run ``track.live_after`` s.

A short run's training must not share the cores with a second process importing MLflow
(issue 11: that made a small model's epoch ~3x slower); a long run still goes live.
"""

from __future__ import annotations

import time
from pathlib import Path

from cnnlab.config import load_config
from cnnlab.engine.observe import observe_run
from cnnlab.track import flush
from cnnlab.track.live import Session, TrackingObserver


class SpyEpochs:
    """Records, at each epoch end, whether the tracking process had started."""

    def __init__(self, observer: TrackingObserver) -> None:
        self.observer = observer
        self.started: list[bool] = []

    def run_started(self, run_dir: Path) -> None:
        pass

    def epoch_ended(self, run_dir: Path, epoch: int) -> None:
        self.started.append(self.observer.sessions[run_dir].proc is not None)

    def run_ended(self, run_dir: Path, status: str) -> None:
        pass


def _observed(tmp_path: Path, live_after: float, epochs: int) -> tuple[list[bool], Session]:
    """Drive a fake run's events; returns (started at each epoch end, its tracker session)."""
    runs = tmp_path / f"runs-{live_after}"
    run_dir = runs / "r1"
    run_dir.mkdir(parents=True)
    cfg = load_config(values={"runs_dir": str(runs), "track.live_after": live_after,
                              "track.backend": "mlflow"})  # fmt: skip
    observer = TrackingObserver(cfg.track)
    spy = SpyEpochs(observer)
    with observe_run([observer, spy], run_dir) as callbacks:
        assert callbacks
        for epoch in range(1, epochs + 1):
            if epoch > 1:
                time.sleep(live_after / 2 if live_after < 60 else 0.01)
            observer.epoch_ended(run_dir, epoch)
            spy.epoch_ended(run_dir, epoch)
        session = observer.sessions[run_dir]
    return spy.started, session


def test_short_run_starts_the_tracker_only_when_it_ends(tmp_path: Path) -> None:
    started, session = _observed(tmp_path, live_after=600, epochs=3)
    assert started == [False, False, False]
    assert session.proc is not None  # run_ended started it, with every queued command
    assert flush(600)


def test_long_run_goes_live(tmp_path: Path) -> None:
    started, _ = _observed(tmp_path, live_after=2.0, epochs=4)
    assert started[0] is False and started[-1] is True
    assert flush(600)


def test_flush_starts_a_tracker_that_has_queued_commands(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    cfg = load_config(values={"runs_dir": str(tmp_path / "runs"), "track.backend": "mlflow"})
    observer = TrackingObserver(cfg.track)
    observer.run_started(run_dir)  # queued: no process yet
    session = observer.sessions[run_dir]
    assert session.proc is None and session.queued
    assert flush(600)  # starts it, and waits until the queued sync is done
    assert session.proc is not None and not session.queued


def test_runs_of_a_study_start_the_tracker_when_the_study_ends(tmp_path: Path) -> None:
    from cnnlab.evaluation.background import deferred_figures

    with deferred_figures():
        started, session = _observed(tmp_path, live_after=600, epochs=2)
        assert started == [False, False] and session.proc is None  # the next cell trains alone
    assert session.proc is not None  # the study is over: its runs are logged now
    assert flush(600)
