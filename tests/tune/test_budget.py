"""--trials N is exact: three processes racing for the last trials stop at N in total."""

from __future__ import annotations

import time

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


def _settings(sampler: str, pruner: str = "none", objectives: str = "val/macro_f1"):
    from cnnlab.tuning.folder import Settings, parse_objectives
    from cnnlab.tuning.space import load_space

    space = load_space("head")
    return Settings(
        data="d", space_name="head", space=space.to_dict(), trials=12, epochs=3,
        objectives=parse_objectives(objectives), sampler=sampler, pruner=pruner,
    )  # fmt: skip


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "nsga2", "grid"])
def test_every_sampler_samples_the_space(sampler):
    """Optuna's own samplers (CMA-ES needs the cmaes package) over a conditional space."""
    from cnnlab.tuning.search import make_pruner, make_sampler

    settings = _settings(sampler)
    if sampler == "grid":  # a grid needs finite entries
        settings.space = {"params": {"model.head": {"type": "categorical",
                                                    "choices": ["linear", "mlp"]}}}  # fmt: skip
    space = settings.load_space()
    study = optuna.create_study(sampler=make_sampler(settings, 0), pruner=make_pruner(settings))
    study.optimize(lambda t: float(len(space.suggest(t))), n_trials=6)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for pruner in ("median", "hyperband"):
        assert make_pruner(_settings(sampler, pruner)) is not None


def test_no_new_trial_after_the_timeout():
    from cnnlab.tuning.search import has_work

    study = optuna.create_study()
    assert has_work(study, 5, None)
    assert not has_work(study, 5, time.monotonic() - 1.0)


@pytest.mark.parametrize(("trials", "startup"), [(3, 1), (30, 3), (200, 5)])
def test_median_pruner_spares_the_first_tenth_of_the_budget(trials, startup):
    """The never-pruned trials that set the bar: a tenth of --trials, 1 to 5 (bench/RESULTS.md
    section 11: a fifth trained 0.63x the unpruned epochs, a tenth 0.37x, same best)."""
    from cnnlab.tuning.search import make_pruner

    settings = _settings("tpe", "median")
    settings.trials = trials
    study = optuna.create_study(direction="maximize", pruner=make_pruner(settings))
    verdicts = []
    for value in [0.9] + [0.1 / 2**i for i in range(startup)]:  # each below all before it
        trial = study.ask()
        trial.report(value, 0)
        verdicts.append(trial.should_prune())
        study.tell(trial, value)
    assert verdicts == [False] * startup + [True]
