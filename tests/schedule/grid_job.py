"""A cheap grid worker for scheduler tests: each point leaves a marker file and sleeps."""

from __future__ import annotations

import os
import time
from pathlib import Path


def grid_worker(
    url: str,
    name: str,
    points: list[int],
    out_dir: str,
    fail_point: int | None = None,
    slow_point: int | None = None,
    sleep_s: float = 0.2,
) -> None:
    from optuna.samplers import GridSampler

    from cnnlab.schedule.storage import open_storage, open_study, storage_url
    from cnnlab.schedule.worker import RunFailed, grid_has_work, run_worker, take_grid_point

    storage = open_storage(storage_url(url, Path(out_dir)))
    study = open_study(name, storage, GridSampler({"job": points}, seed=0))
    out = Path(out_dir)

    def objective(trial) -> float:
        job = take_grid_point(study, trial, "job", points)
        (out / f"{job}-{os.getpid()}-{trial.number}").write_text("started")
        time.sleep(60.0 if job == slow_point else sleep_s)
        if job == fail_point:
            raise RunFailed(f"point {job} cannot work")
        return float(job)

    run_worker(study, objective, has_work=lambda s: grid_has_work(s, "job", points))


def stopped_worker(signum: int) -> None:
    """A worker whose run is stopped by a signal, as training raises it (with a run's advice)."""
    from cnnlab.errors import Interrupted

    raise Interrupted(signum, "runs/c1-seed42 keeps epoch 1", "cnnlab train --resume runs/c1")
