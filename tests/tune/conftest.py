"""Helpers for tune tests: tiny data and tiny trials."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import write_folder

# Tiny trials: 16-px images, no gallery of worst mistakes (its plot is the slow part).
TINY = {"data__img_size": 16, "eval__worst_mistakes": 0}
TINY_ARGS = ["data.img_size=16", "eval.worst_mistakes=0"]


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """3 classes x 24 images of 16 px: a validation split of 11 images."""
    return write_folder(tmp_path / "small", classes=3, per_class=24, size=16)


def lr_space(tmp_path: Path) -> Path:
    """A grid whose three trials end three ways: diverge (lr 1e4), learn nothing and get
    pruned (lr 1e-9), learn (lr 2e-3). Grid order with seed 0: the last choice comes first."""
    file = tmp_path / "lr.yaml"
    file.write_text(
        "set: {train.optimizer: adam, train.scheduler: none}\n"
        "params:\n"
        "  train.lr: {type: categorical, choices: [1.0e+4, 1.0e-9, 2.0e-3]}\n",
        encoding="utf-8",
    )
    return file
