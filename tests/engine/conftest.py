"""Fixtures for the engine tests; the helpers live in engine_helpers.py."""

from __future__ import annotations

import pytest

from cnnlab.config import TrainConfig


@pytest.fixture
def cpu_train() -> TrainConfig:
    """A fast CPU fp32 training config."""
    return TrainConfig(
        epochs=2, batch_size=16, optimizer="adam", lr=1e-2, scheduler="none", precision="32",
        accelerator="cpu", devices=1, channels_last="false", label_smoothing=0.0,
    )  # fmt: skip
