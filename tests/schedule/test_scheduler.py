"""The shared scheduling engine on real Optuna storages (SQLite file, PostgreSQL server)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from tests.schedule.grid_job import grid_worker, stopped_worker

from cnnlab.errors import ConfigError
from cnnlab.schedule.pool import run_pool
from cnnlab.schedule.storage import open_storage, redact, storage_url
from cnnlab.schedule.worker import ERROR_ATTR, grid_has_work, grid_points

POINTS = list(range(6))


def _markers(out: Path) -> Counter:
    return Counter(int(p.name.split("-")[0]) for p in out.iterdir())


def _study(url: str, name: str = "g") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(storage_url(url, Path())))


def _check_every_point_done_once(url: str, out: Path) -> None:
    study = _study(url)
    assert grid_points(study, "job") == dict.fromkeys(POINTS, "done")
    assert _markers(out) == Counter(POINTS)  # no point was trained twice
    assert not grid_has_work(study, "job", POINTS)


def test_two_processes_share_a_sqlite_grid_without_duplicates(tmp_path):
    url = storage_url(None, tmp_path)
    out = tmp_path / "marks"
    out.mkdir()
    codes = run_pool(2, grid_worker, (url, "g", POINTS, str(out)))
    assert codes == [0, 0]
    _check_every_point_done_once(url, out)


@pytest.mark.slow
def test_two_processes_share_a_postgresql_grid(tmp_path, postgres_url):
    out = tmp_path / "marks"
    out.mkdir()
    codes = run_pool(2, grid_worker, (postgres_url, "g", POINTS, str(out)))
    assert codes == [0, 0]
    _check_every_point_done_once(postgres_url, out)


def test_a_failed_point_is_recorded_and_never_retried(tmp_path):
    url = storage_url(None, tmp_path)
    out = tmp_path / "marks"
    out.mkdir()
    grid_worker(url, "g", POINTS, str(out), fail_point=3, sleep_s=0.0)
    study = _study(url)
    taken = grid_points(study, "job")
    assert taken[3] == "failed" and all(taken[p] == "done" for p in POINTS if p != 3)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.user_attrs[ERROR_ATTR] for t in failed] == ["point 3 cannot work"]
    grid_worker(url, "g", POINTS, str(out), sleep_s=0.0)  # a second worker: nothing to do
    assert _markers(out) == Counter(POINTS)


def test_a_killed_workers_point_is_queued_again_and_finished(tmp_path):
    url = storage_url(None, tmp_path)
    out = tmp_path / "marks"
    out.mkdir()
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=grid_worker, args=(url, "g", POINTS, str(out), None, 2, 0.0))
    victim.start()
    deadline = time.monotonic() + 120
    while not any(p.name.startswith("2-") for p in out.iterdir()):
        assert time.monotonic() < deadline and victim.is_alive(), "worker never reached point 2"
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    grid_worker(url, "g", POINTS, str(out), sleep_s=0.0)  # finds the dead trial at once
    study = _study(url)
    assert grid_points(study, "job") == dict.fromkeys(POINTS, "done")
    marks = _markers(out)
    assert marks[2] == 2 and all(marks[p] == 1 for p in POINTS if p != 2)
    dead = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(dead) == 1 and dead[0].params["job"] == 2 and not dead[0].user_attrs.get(ERROR_ATTR)


def test_storage_urls_and_errors(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{(tmp_path / 'schedule.db').resolve()}"
    assert redact("postgresql://me:secret@db.example/x") == "postgresql://me:***@db.example/x"
    with pytest.raises(ConfigError, match="not a database URL"):
        storage_url("my-db", tmp_path)
    assert storage_url("postgresql://u@h/db", tmp_path) == "postgresql+psycopg2://u@h/db"
    with pytest.raises(ConfigError, match="cannot connect"):
        open_storage(storage_url("postgresql://nobody@127.0.0.1:9/none", tmp_path))


def test_a_worker_stopped_by_a_signal_exits_quietly_with_its_code(capfd) -> None:
    """The parent, stopped by the same Ctrl-C, says how to continue the study or tune; a
    worker's traceback ending in `cnnlab train --resume RUN` was wrong advice there."""
    codes = run_pool(2, stopped_worker, (signal.SIGINT,))
    assert codes == [130, 130]
    assert run_pool(1, stopped_worker, (signal.SIGTERM,)) == [143]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "--resume" not in err, err


def test_a_pool_without_a_terminal_prints_a_line_as_work_finishes() -> None:
    """In a log file a progress bar shows nothing until it ends; the pool says each step."""
    from types import SimpleNamespace

    from cnnlab.schedule.pool import _Lines

    printed: list[str] = []
    console = SimpleNamespace(is_terminal=False, print=printed.append)
    lines = _Lines(SimpleNamespace(console=console, disable=False), "study")
    for done in (1, 1, 1, 2, 4):  # one finished before the pool (a resume), then three here
        lines.update(done, 4)
    assert [ln.split(";")[0] for ln in printed] == [
        "study: 2/4 finished", "study: 4/4 finished",
    ]  # fmt: skip
    assert printed[-1].endswith("eta 0:00:00")
    console.is_terminal = True  # a terminal has the bar itself
    lines.update(3, 5)
    assert len(printed) == 2
