"""best.yaml trains with cnnlab train; --retrain-best trains it over seeds as a study."""

from __future__ import annotations

import pytest
from tests.studies.conftest import cli
from tests.tune.conftest import TINY

import cnnlab


@pytest.mark.slow
def test_best_yaml_trains_and_retrain_best_is_a_study_on_the_tunes_split(small_folder, tmp_path):
    # trials train 1 epoch; train.epochs=2 is the "full" length the retrain uses
    t = cnnlab.tune(small_folder, space="train", trials=1, epochs=1, out=str(tmp_path / "t"),
                    train__epochs=2, **TINY)  # fmt: skip
    runs = tmp_path / "runs"
    proc = cli("train", "--config", str(t.best_config), "--runs-dir", str(runs), "--name", "b")
    assert proc.returncode == 0, proc.stderr
    assert (runs / "b" / "summary.json").is_file()
    study = t.retrain_best(seeds=2)
    assert study.path == t.path / "retrain-best"
    assert [r["seed"] for r in study.results] == ["42", "43"]
    assert len(study.table) == 1 and study.table[0]["label"] == f"best trial {t.best['trial']}"
    split = (t.path / "split.csv").read_bytes()
    for run in study.run_dirs:
        assert (run / "split.csv").read_bytes() == split  # the tune's split, exactly
        assert '"epochs_run": 2' in (run / "summary.json").read_text()
    lr = t.best_params["train.lr"]
    assert all(r["train.lr"] == str(lr) for r in study.results)
