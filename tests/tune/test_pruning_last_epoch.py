"""The pruner never stops a trial at its last epoch: the training is done by then, and a
pruned trial's finished run would be thrown away (its objective never counted)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from cnnlab.engine.observe import StopRun
from cnnlab.tuning.search import Pruning

EPOCHS = 3
METRIC = "val/macro_f1"


def _epoch(run_dir: Path, values: list[float]) -> None:
    """metrics.csv as the engine writes it, one row per epoch so far."""
    lines = ["epoch," + METRIC] + [f"{i},{v}" for i, v in enumerate(values, start=1)]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _study() -> optuna.Study:
    """One finished trial that scored 0.9 at every epoch: the median every later trial meets."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    first = study.ask()
    for epoch in range(1, EPOCHS + 1):
        first.report(0.9, epoch)
    study.tell(first, 0.9)
    return study


def test_a_worse_trial_is_pruned_before_its_last_epoch(tmp_path: Path) -> None:
    trial = _study().ask()
    pruning = Pruning(trial, METRIC, EPOCHS)
    _epoch(tmp_path, [0.1])
    with pytest.raises(StopRun):
        pruning.epoch_ended(tmp_path, 1)
    assert pruning.stopped == (1, 0.1)


def test_the_last_epoch_is_reported_but_never_pruned(tmp_path: Path) -> None:
    study = _study()
    trial = study.ask()
    pruning = Pruning(trial, METRIC, EPOCHS)
    _epoch(tmp_path, [0.1, 0.1, 0.1])
    trial.report(0.1, 2)
    assert trial.should_prune()  # 0.1 against a median of 0.9: the pruner would stop it
    pruning.epoch_ended(tmp_path, EPOCHS)  # but the last epoch's training is done: no StopRun
    assert pruning.stopped is None
    frozen = study.trials[trial.number]
    assert frozen.intermediate_values[EPOCHS] == pytest.approx(0.1)  # reported all the same
