"""data.normalize=false keeps pixels in 0..1: mean 0 and std 1 reach the model bundle."""

from __future__ import annotations

from cnnlab.config import load_config
from cnnlab.engine.setup import build_model


def test_normalize_off_gives_identity_statistics():
    cfg = load_config(overrides=["model.name=tiny_cnn", "data.normalize=false"])
    assert cfg.data.normalize is False
    data_stats = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    off = build_model(cfg.model, 3, 3, 32, *data_stats, normalize=cfg.data.normalize)
    assert off.mean == (0.0, 0.0, 0.0) and off.std == (1.0, 1.0, 1.0)
    on = build_model(cfg.model, 3, 3, 32, *data_stats)
    assert on.mean == data_stats[0] and on.std == data_stats[1]
