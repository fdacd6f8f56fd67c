"""Seed 003's minimal model: accuracy and parameter count, the Pareto front, --target."""

from __future__ import annotations

import pytest
from tests.studies.conftest import read_csv
from tests.tune.conftest import TINY

import cnnlab


@pytest.mark.slow
def test_pareto_front_and_the_smallest_model_reaching_the_target(small_folder, tmp_path):
    out = tmp_path / "minimal"
    args = dict(space="cnn", trials=4, epochs=1, objective="val/accuracy,params", out=str(out))
    t = cnnlab.tune(small_folder, target=0.0, **args, **TINY)
    settings = t.settings
    assert settings.sampler == "nsga2" and settings.pruner == "none"
    assert settings.objectives == ["val/accuracy", "params"]
    _, front = read_csv(out / "pareto.csv")
    done = [r for r in t.trials if r["state"] == "COMPLETE"]
    assert front and len(done) == 4
    points = [(float(r["val/accuracy"]), float(r["params"])) for r in done]
    for row in front:  # nobody beats a front trial on both objectives
        acc, size = float(row["val/accuracy"]), float(row["params"])
        assert not any(a >= acc and p <= size and (a, p) != (acc, size) for a, p in points)
    # target 0: every front trial reaches it, so the smallest model is chosen
    assert t.best["values"]["params"] == min(float(r["params"]) for r in front)
    html = t.report.read_text(encoding="utf-8")
    assert "Pareto front" in html
    # the same command with an unreachable target: no new trial; the most accurate is shown
    t2 = cnnlab.tune(small_folder, target=1.01, **args, **TINY)
    assert len(t2.trials) == 4
    assert t2.best["values"]["val/accuracy"] == max(float(r["val/accuracy"]) for r in front)


def test_two_objectives_refuse_pruning_and_cmaes(small_folder, tmp_path):
    from cnnlab.errors import ConfigError

    both = dict(objective="val/accuracy,params", out=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match="pruning needs one objective"):
        cnnlab.tune(small_folder, pruner="median", **both)
    with pytest.raises(ConfigError, match="cmaes"):
        cnnlab.tune(small_folder, sampler="cmaes", **both)
    with pytest.raises(ConfigError, match="--objective"):
        cnnlab.tune(small_folder, objective="val/loss", out=str(tmp_path / "y"))
    assert not (tmp_path / "x").exists()
