"""Two worker processes share one tune through a real PostgreSQL server and stop at N."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest
from tests.tune.conftest import TINY

import cnnlab
from cnnlab.schedule.storage import open_storage, storage_url
from cnnlab.tuning.search import counted


@pytest.mark.slow
def test_two_workers_on_postgresql_stop_at_exactly_n_trials(small_folder, tmp_path, postgres_url):
    out = tmp_path / "tune"
    t = cnnlab.tune(
        small_folder, space="train", trials=4, epochs=1, sampler="random", pruner="none",
        out=str(out), storage=postgres_url, workers=2, study="pg-tune", **TINY,
    )  # fmt: skip
    storage = open_storage(storage_url(postgres_url, out))
    study = optuna.load_study(study_name="pg-tune", storage=storage)
    budget = [tr for tr in study.trials if counted(tr)]
    assert len(budget) == 4  # exactly N, over both workers
    assert all(tr.state == optuna.trial.TrialState.COMPLETE for tr in budget)
    workers = Counter(tr.user_attrs["worker"] for tr in budget)
    assert len(workers) == 2, workers  # both processes trained trials
    rows = [r for r in t.trials if r["state"] == "COMPLETE"]
    assert len({r["run_dir"] for r in rows}) == 4  # one run folder per trial, none shared
    assert not (out / "schedule.db").exists()  # the server holds the study
    assert "postgres@" in t.settings.storage and (out / "best.yaml").is_file()
