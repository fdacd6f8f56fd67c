"""Ctrl-C on a tune with --workers: it stops (exit 130) and queues the stopped trials again.

The parent of a worker pool once let Python raise ``KeyboardInterrupt`` wherever it was; when
that was inside a SQLAlchemy weakref callback, Python printed "Exception ignored" and dropped
it, and the tune went on by itself with the interrupted trials counted as failed.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import optuna
import pytest
from tests.tune.conftest import TINY_ARGS
from tests.tune.pool_job import sleeper

from cnnlab.schedule import pool
from cnnlab.schedule.storage import open_storage, storage_url
from cnnlab.schedule.worker import ERROR_ATTR
from cnnlab.tuning.search import RUN_DIR, budget_counts

pytestmark = pytest.mark.usefixtures("ctrl_c_raises")  # as in a terminal


class _Target:
    pass


def _signal_inside_a_weakref_callback() -> None:
    """Deliver SIGINT while Python runs a weakref callback, as a GC of SQLAlchemy's class
    registry did: an exception raised there is printed as "Exception ignored" and dropped."""

    def callback(ref: weakref.ref) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs at the next bytecode check, in here
            pass

    target = _Target()
    ref = weakref.ref(target, callback)
    del target
    gc.collect()
    assert ref() is None


@pytest.mark.slow
def test_ctrl_c_that_lands_in_a_callback_still_stops_the_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(pool, "FORWARD_AFTER_S", 1.0)  # the signal reached the parent only
    calls = []

    def progress() -> tuple[int, int]:
        calls.append(1)
        if len(calls) == 2:  # the workers have started
            _signal_inside_a_weakref_callback()
        return 0, 2

    with pytest.raises(KeyboardInterrupt) as caught:
        pool.run_pool(2, sleeper, (str(tmp_path), 30.0), progress=progress)
    assert getattr(caught.value, "signum", None) == signal.SIGINT
    ends = sorted(p.suffix for p in tmp_path.iterdir())
    assert ends == [".interrupted", ".interrupted"]  # both workers stopped, none finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def _trials(out: Path, url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(storage_url(url, out))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _both_training(out: Path, url: str, name: str) -> bool:
    """Two trials running, each with an epoch in its run folder's metrics.csv."""
    try:
        running = [t for t in _trials(out, url, name) if t.state.name == "RUNNING"]
    except Exception:  # the study is not made yet
        return False
    metrics = [out / t.user_attrs.get(RUN_DIR, "-") / "metrics.csv" for t in running]
    return len(metrics) == 2 and all(
        m.is_file() and len(m.read_text().splitlines()) > 1 for m in metrics
    )


@pytest.mark.slow
def test_ctrl_c_stops_a_tune_with_workers_and_queues_its_trials_again(
    small_folder, tmp_path, postgres_url
):
    out, name = tmp_path / "tune", "sigint"
    secret = postgres_url.replace("postgres@", "postgres:s3cret@")  # trust: any password
    args = ["tune", str(small_folder), "--space", "train", "--trials", "6", "--epochs", "400",
            "--pruner", "none", "--workers", "2", "--out", str(out), "--storage", secret,
            "--study", name, *TINY_ARGS]  # fmt: skip
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not _both_training(out, postgres_url, name):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the two workers never trained"
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {out} keeps its finished trials"), last
    # the command to go on hides the password and says to put it back
    assert "postgres:***@" in last and "--storage password in place of ***" in last, last
    assert "s3cret" not in stdout + stderr
    trials = _trials(out, postgres_url, name)
    stopped = [t for t in trials if t.state.name == "FAIL"]
    queued = [t for t in trials if t.state.name == "WAITING"]
    assert len(stopped) == 2 and not any(t.user_attrs.get(ERROR_ATTR) for t in stopped)
    assert sorted(t.user_attrs[RUN_DIR] for t in queued) == sorted(
        t.user_attrs[RUN_DIR] for t in stopped
    )  # the retries resume the same run folders
    assert {t.state.name for t in trials} == {"FAIL", "WAITING"}  # no trial went on
    study = optuna.load_study(study_name=name, storage=open_storage(storage_url(postgres_url, out)))
    assert budget_counts(study) == (0, 0)  # no place of the budget used up
