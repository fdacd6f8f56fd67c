"""Two real trained runs on one split: different architecture, input size and preprocessing."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_folder

ODD_CLASS = "gato 猫"  # a unicode class name with a space must survive into every file


@pytest.fixture(scope="package")
def members(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"data": ROOT, "a": tiny_cnn run at 32 px, "b": cnn run at 24 px, crop 0.875}."""
    import cnnlab

    tmp = tmp_path_factory.mktemp("ensemble")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_CACHE", str(tmp / "cache"))
        root = write_folder(tmp / "data", classes=3, per_class=16, size=32)
        (root / "class_2").rename(root / ODD_CLASS)
        common = {"epochs": 2, "runs_dir": tmp / "runs", "batch_size": 8}  # ~4 steps an epoch
        a = cnnlab.train(root, model="tiny_cnn", seed=0, name="a", **common)
        # another train.seed, no split_file: the split is data.split_seed's alone (ensembles.md)
        b = cnnlab.train(
            root, model="cnn", img_size=24, seed=1, name="b", data__crop_pct=0.875, **common
        )
    return {"data": root, "a": a.path, "b": b.path}
