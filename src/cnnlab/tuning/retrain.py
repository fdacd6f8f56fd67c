"""``--retrain-best``: the tune's best configuration over several seeds, as a study.

A tune's best validation score is optimistic (the search chose it among many); a study of the
chosen configuration over fresh seeds, scored on the test split, says what it is worth.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.console import info
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.tuning.space import Space, split_key

if TYPE_CHECKING:
    from cnnlab.studies.plan import Plan
    from cnnlab.studies.study import Study

FOLDER = "retrain-best"  # inside the tune folder; then retrain-best-2, -3... for other settings


def retrain_best(folder: str | Path, seeds: int = 3, epochs: int | None = None) -> Study:
    """Train the best configuration over several seeds as a study (``--retrain-best``).

    The trial's sampled values form the study's one cell; the tune's split and its shared
    values are the rest. Epochs: ``epochs``, else a ``train.epochs`` the tune was given as
    KEY=VALUE, else the config's default (trials often train for fewer, with ``--epochs``).
    The study folder is ``retrain-best/`` inside the tune folder. Asked again with the same
    settings, that study is continued (an interrupted run resumes, finished ones are kept);
    with other settings (epochs, seeds, a new best trial) the retrain goes to the next free
    ``retrain-best-N/``, so every earlier retrain stays as it was.
    """
    from cnnlab.studies.study import resume_study, run_study

    folder = Path(folder)
    plan = _plan(folder, seeds, epochs)
    target, same = _study_folder(folder, plan)
    if same:
        info(f"{target} holds this retrain already: continuing it")
        return resume_study(target)
    if target.name != FOLDER:
        info(f"{folder / FOLDER} holds a retrain with other settings: this one goes to {target}")
    return run_study(plan, target)


def _plan(folder: Path, seeds: int, epochs: int | None) -> Plan:
    """The retrain's plan: the best trial's values as the one cell, on the tune's split."""
    from cnnlab.studies.study import make_plan
    from cnnlab.tuning.tune import Tuning

    tuning = Tuning(folder)
    best, settings = tuning.best, tuning.settings
    if best is None:
        raise ConfigError(f"{folder}: no trial completed, so there is nothing to retrain")
    space = settings.load_space()
    cell = space.config_values(best["params"], {})
    cell = {k: v for k, v in cell.items() if k not in space.fixed or k in _searched(space)}
    base = {**space.fixed, **settings.values}
    base = {k: v for k, v in base.items() if k not in cell}
    base["data.split_file"] = str((folder / "split.csv").resolve())
    if epochs is not None:
        base["train.epochs"] = epochs
    plan = {"cells": [{"label": f"best trial {best['trial']}", "set": cell}], "set": base}
    return make_plan(settings.data, seeds=seeds, plan_file=plan, command=settings.command)


def _study_folder(folder: Path, plan: Plan) -> tuple[Path, bool]:
    """The retrain study folder that holds ``plan`` (True), else the first free one (False).

    A folder that is not a readable study (someone else's files) is passed over, never used.
    """
    from cnnlab.studies.folder import load_plan, plan_digest

    digest = plan_digest(plan)
    for i in range(1, 10_000):
        candidate = folder / (FOLDER if i == 1 else f"{FOLDER}-{i}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate, False
        try:
            if plan_digest(load_plan(candidate)[0]) == digest:
                return candidate, True
        except CnnlabError:
            continue
    raise ConfigError(f"{folder}: too many {FOLDER}-N folders; remove some")


def _searched(space: Space) -> set[str]:
    return {split_key(p.key)[0] for p in space.params}
