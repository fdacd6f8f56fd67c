"""The head space: a frozen backbone runs once for the whole search, heads train on features."""

from __future__ import annotations

import pytest
from tests.tune.conftest import TINY

import cnnlab
from cnnlab.paths import cache_dir


@pytest.mark.slow
def test_head_trials_share_one_backbone_pass(small_folder, tmp_path):
    t = cnnlab.tune(small_folder, space="head", trials=4, epochs=2, sampler="random",
                    pruner="none", out=str(tmp_path / "head"), **TINY)  # fmt: skip
    rows = t.trials
    assert [r["state"] for r in rows] == ["COMPLETE"] * 4
    assert {r["model.head"] for r in rows} <= {"linear", "mlp", "logreg"}
    # four trials, one cached feature entry per split (train, val): one backbone pass
    assert len(list(cache_dir("features").glob("*.safetensors"))) == 2
    cards = [(t.path / r["run_dir"] / "model.json").read_text() for r in rows]
    assert all('"frozen"' in card for card in cards)
