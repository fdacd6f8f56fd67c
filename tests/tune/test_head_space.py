"""The head space: a frozen backbone runs once for the whole search, heads train on features."""

from __future__ import annotations

import pytest
import yaml
from tests.tune.conftest import TINY

import cnnlab
from cnnlab.paths import cache_dir


@pytest.mark.slow
def test_head_trials_share_one_backbone_pass(small_folder, tmp_path):
    t = cnnlab.tune(small_folder, space="head", trials=3, epochs=1, sampler="random",
                    pruner="none", out=str(tmp_path / "head"), **TINY)  # fmt: skip
    rows = t.trials
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert {r["model.head"] for r in rows} <= {"linear", "mlp", "logreg"}
    # three trials, one cached feature entry per split (train, val, test): one backbone pass
    # each, the test split's scored by every trial's head from the cache
    assert len(list(cache_dir("features").glob("*.safetensors"))) == 3
    for row in rows:  # complete run folders, reported without the Grad-CAM gallery
        run = t.path / row["run_dir"]
        assert '"frozen"' in (run / "model.json").read_text()
        assert (run / "report.html").is_file() and (
            run / "plots" / "test_confusion_matrix.png"
        ).is_file()
        assert yaml.safe_load((run / "config.yaml").read_text())["eval"]["explain"] is False
        assert not (run / "plots" / "test_gradcam_correct.png").exists()
    # the best configuration trains with the config's default again: a full report
    assert yaml.safe_load(t.best_config.read_text(encoding="utf-8"))["eval"]["explain"] is True
