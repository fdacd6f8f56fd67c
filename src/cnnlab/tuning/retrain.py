"""``--retrain-best``: the tune's best configuration over several seeds, as a study.

A tune's best validation score is optimistic (the search chose it among many); a study of the
chosen configuration over fresh seeds, scored on the test split, says what it is worth.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.errors import ConfigError
from cnnlab.tuning.space import Space, split_key

if TYPE_CHECKING:
    from cnnlab.studies.study import Study


def retrain_best(folder: str | Path, seeds: int = 3, epochs: int | None = None) -> Study:
    """Train the best configuration over several seeds as a study (``--retrain-best``).

    The trial's sampled values form the study's one cell; the tune's split and its shared
    values are the rest. Epochs: ``epochs``, else a ``train.epochs`` the tune was given as
    KEY=VALUE, else the config's default (trials often train for fewer, with ``--epochs``).
    The study folder is ``retrain-best/`` inside the tune folder.
    """
    from cnnlab.studies.study import make_plan, run_study

    folder = Path(folder)
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
    spec = make_plan(settings.data, seeds=seeds, plan_file=plan, command=settings.command)
    return run_study(spec, folder / "retrain-best")


def _searched(space: Space) -> set[str]:
    return {split_key(p.key)[0] for p in space.params}
