"""``--retrain-best`` asked again: the same settings continue their study, other settings
(another train.epochs, as docs/tuning.md promises) retrain into ``retrain-best-2``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.conftest import folder_digest
from tests.studies.conftest import cli
from tests.tune.conftest import TINY, TINY_ARGS

import cnnlab


def _one_point_space(tmp_path: Path) -> Path:
    file = tmp_path / "one.yaml"
    file.write_text(
        "set: {train.optimizer: adam, train.scheduler: none}\n"
        "params:\n"
        "  train.lr: {type: categorical, choices: [2.0e-3]}\n",
        encoding="utf-8",
    )
    return file


def _epochs_run(study_folder: Path) -> list[int]:
    runs = sorted((study_folder / "runs").iterdir())
    return [json.loads((r / "summary.json").read_text())["epochs_run"] for r in runs]


@pytest.mark.slow
def test_retrain_best_again_with_other_epochs_retrains_into_a_new_folder(small_folder, tmp_path):
    data = folder_digest(small_folder)
    out, space = tmp_path / "tune", _one_point_space(tmp_path)
    t = cnnlab.tune(small_folder, space=str(space), sampler="grid", trials=1, epochs=1,
                    out=str(out), train__epochs=1, **TINY)  # fmt: skip
    first = t.retrain_best(seeds=1)
    assert first.path == out / "retrain-best" and _epochs_run(first.path) == [1]
    kept = folder_digest(first.path / "runs")

    args = ["tune", str(small_folder), "--space", str(space), "--sampler", "grid",
            "--trials", "1", "--epochs", "1", "--out", str(out), *TINY_ARGS]  # fmt: skip
    tune_yaml = (out / "tune.yaml").read_bytes()
    bad = cli(*args, "train.epochs=3", "--retrain-best", "--seeds", "0")
    assert bad.returncode == 2 and "--seeds 0" in bad.stderr, bad.stderr
    assert (out / "tune.yaml").read_bytes() == tune_yaml  # refused before any change

    again = cli(*args, "train.epochs=2", "--retrain-best", "--seeds", "1")
    assert again.returncode == 0, again.stderr
    assert _epochs_run(out / "retrain-best-2") == [2]  # retrained for N epochs, as documented
    saved = yaml.safe_load((out / "tune.yaml").read_text(encoding="utf-8"))
    assert saved["values"]["train.epochs"] == 2
    assert folder_digest(first.path / "runs") == kept  # the first retrain is left as it was

    same = t.retrain_best(seeds=1, epochs=1)  # the first settings again: that study, continued
    assert same.path == first.path and folder_digest(first.path / "runs") == kept
    assert not (out / "retrain-best-3").exists()
    assert folder_digest(small_folder) == data
