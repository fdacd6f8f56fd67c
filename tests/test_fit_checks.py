"""fit() refuses contradictory model settings before any run folder exists."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnlab
from cnnlab.errors import ConfigError


def test_weights_file_with_scratch_mode_is_refused(tiny_folder: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"model\.mode=scratch"):
        cnnlab.train(tiny_folder, mode="scratch", weights=str(weights), runs_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_sklearn_head_needs_frozen_mode(tiny_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.mode=frozen"):
        cnnlab.train(tiny_folder, model__head="logreg", runs_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()
