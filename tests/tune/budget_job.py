"""A cheap tune worker for budget tests: the real budget rules, a trial that only sleeps."""

from __future__ import annotations

import time
from pathlib import Path


def budget_worker(url: str, name: str, total: int, sleep_s: float = 0.3) -> None:
    from optuna.samplers import RandomSampler

    from cnnlab.schedule.storage import open_storage, open_study, storage_url
    from cnnlab.schedule.worker import run_worker
    from cnnlab.tuning.search import has_work, take_place

    study = open_study(name, open_storage(storage_url(url, Path())), RandomSampler())

    def objective(trial) -> float:
        take_place(study, trial, total)
        time.sleep(sleep_s)
        return trial.suggest_float("x", 0.0, 1.0)

    run_worker(study, objective, has_work=lambda s: has_work(s, total, None))
