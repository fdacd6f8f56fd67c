"""--retrain-best: the best configuration over three seeds, as a study on the tune's split."""

from __future__ import annotations

import pytest
from tests.tune.conftest import TINY

import cnnlab


@pytest.mark.slow
def test_retrain_best_runs_a_study_of_three_seeds_on_the_tunes_split(small_folder, tmp_path):
    # trials train 1 epoch; train.epochs=2 is the "full" length the retrain uses
    t = cnnlab.tune(small_folder, space="train", trials=1, epochs=1, out=str(tmp_path / "t"),
                    train__epochs=2, **TINY)  # fmt: skip
    study = t.retrain_best(seeds=3)
    assert study.path == t.path / "retrain-best"
    assert [r["seed"] for r in study.results] == ["42", "43", "44"]
    assert len(study.table) == 1 and study.table[0]["label"] == f"best trial {t.best['trial']}"
    split = (t.path / "split.csv").read_bytes()
    for run in study.run_dirs:
        assert (run / "split.csv").read_bytes() == split  # the tune's split, exactly
        assert '"epochs_run": 2' in (run / "summary.json").read_text()
    lr = t.best_params["train.lr"]
    assert all(r["train.lr"] == str(lr) for r in study.results)
