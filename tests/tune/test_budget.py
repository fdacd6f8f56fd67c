"""--trials N is exact: three processes racing for the last trials stop at N in total."""

from __future__ import annotations

import optuna
import pytest
from tests.tune.budget_job import budget_worker

from cnnlab.schedule.pool import run_pool
from cnnlab.schedule.storage import open_storage, storage_url
from cnnlab.tuning.search import SURPLUS, budget_counts, counted


@pytest.mark.slow
def test_three_processes_stop_at_exactly_n_trials(tmp_path):
    url = storage_url(None, tmp_path)
    assert run_pool(3, budget_worker, (url, "b", 7)) == [0, 0, 0]
    study = optuna.load_study(study_name="b", storage=open_storage(url))
    budget = [t for t in study.trials if counted(t)]
    assert len(budget) == 7 and budget_counts(study) == (7, 7)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in budget)
    dropped = [t for t in study.trials if t.user_attrs.get(SURPLUS)]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in dropped)
    budget_worker(url, "b", 9, sleep_s=0.0)  # a larger --trials later: two more, no more
    study = optuna.load_study(study_name="b", storage=open_storage(url))
    assert sum(counted(t) for t in study.trials) == 9
