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


def test_training_statistics_are_read_only_for_a_model_that_uses_them():
    """Reading the training split's statistics costs seconds at 224 px (each tune trial paid
    it); a pretrained network uses its own, so they are not read for it."""
    calls: list[int] = []
    stats = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))

    def data_stats():
        calls.append(1)
        return stats

    scratch = load_config(overrides=["model.name=tiny_cnn"]).model
    assert build_model(scratch, 3, 3, 32, data_stats=data_stats).mean == stats[0]
    assert calls == [1]
    frozen = load_config(overrides=["model.name=efficientnet_lite0", "model.mode=frozen"]).model
    bundle = build_model(frozen, 3, 3, 64, data_stats=data_stats)
    assert calls == [1] and bundle.pretrained and bundle.mean != stats[0]
    off = load_config(overrides=["model.name=tiny_cnn", "data.normalize=false"])
    assert build_model(off.model, 3, 3, 32, normalize=False, data_stats=data_stats).mean == (
        0.0,
        0.0,
        0.0,
    )
    assert calls == [1]
