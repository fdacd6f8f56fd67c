"""A tune in the tracker: one parent run (kind ``tune``) with every trial's run nested under it.

The trials' runs live in ``DIR/trials``, so their default store (``DIR/trials/mlflow.db``) holds
the parent too, as for any run; the tune folder's ``track.json`` keeps the parent's identity,
so a resumed tune (or another worker's invocation) continues the same parent run. At its end
every trial's run is made complete in the store (a trial that ended in an invocation killed
before its tracker logged it is sent again), and the command waits for its tracker.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.tuning.folder import (
    BEST_YAML,
    HTML,
    PARETO_CSV,
    TRIALS,
    TRIALS_CSV,
    TUNE_YAML,
    Settings,
)

if TYPE_CHECKING:
    from cnnlab.track import Parent
    from cnnlab.tuning.tune import Tuning


def parent_run(folder: Path, settings: Settings) -> AbstractContextManager[Parent]:
    """Open the tune's parent run; runs trained inside the block (any worker's) nest under it.

    Its params are the settings (space, budget, objective, sampler, pruner, fixed values);
    the storage URL is left out (it may name a server and user).
    """
    from cnnlab import track
    from cnnlab.api import make_config

    values = settings.load_space().config_values({}, settings.values)
    cfg = make_config(settings.data, values={**values, "runs_dir": str(folder / TRIALS)})
    params = {k: v for k, v in asdict(settings).items() if k not in ("command", "storage")}
    return track.parent_run(cfg, "tune", folder.resolve().name, params, folder, wait=True)


def track_outputs(parent: Parent, tuning: Tuning) -> None:
    """Log every trial's run that the store may lack; tag the best trial's run best; attach
    the tune's tables and report to the parent. Only runs trained in this tune folder."""
    from cnnlab.tuning.results import local_run

    # runs another process sharing the study trained belong to its own tune's parent run
    here = [local_run(tuning.path, t.get("run_dir", "")) for t in tuning.trials]
    parent.log_runs(run for run in here if run is not None)
    best = tuning.best
    best_run = local_run(tuning.path, best["run_dir"]) if best is not None else None
    if best_run is not None:
        parent.tag_best(best_run)
    names = (TUNE_YAML, TRIALS_CSV, BEST_YAML, PARETO_CSV, HTML)
    tags = {"cnnlab.best_trial": str(best["trial"])} if best is not None else None
    parent.log([tuning.path / name for name in names], tags)
