"""Batched transforms: shapes, dtype, range, per-image randomness, seeding, mix_batch."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data.transforms import build_eval_transform, build_train_transform, mix_batch
from cnnlab.errors import ConfigError

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def _batch(c: int = 3, side: int = 36, b: int = 16) -> torch.Tensor:
    return torch.randint(
        0, 256, (b, c, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


@pytest.mark.parametrize("preset", ["none", "light", "standard", "strong"])
@pytest.mark.parametrize("channels", [1, 3])
def test_train_presets_shape_range_seed(preset: str, channels: int) -> None:
    tf = build_train_transform(32, MEAN, STD, preset)
    x = _batch(channels)
    torch.manual_seed(0)
    a = tf(x)
    torch.manual_seed(0)
    b = tf(x)
    assert a.shape == (16, channels, 32, 32) and a.dtype == torch.float32
    assert a.is_contiguous() and torch.equal(a, b)
    assert a.min() >= -2.0 - 1e-5 and a.max() <= 2.0 + 1e-5
    assert tf(x).to(memory_format=torch.channels_last).shape == a.shape


def test_none_equals_eval_and_eval_centre_crops() -> None:
    x = _batch()
    ev = build_eval_transform(32, MEAN, STD)(x)
    assert torch.allclose(build_train_transform(32, MEAN, STD, "none")(x), ev, atol=1e-5)
    expected = (x[:, :, 2:34, 2:34].float() / 255 - 0.5) / 0.25
    assert torch.allclose(ev, expected, atol=1e-5)


def test_light_is_random_per_image() -> None:
    x = _batch(side=32)[:1].repeat(32, 1, 1, 1)
    torch.manual_seed(0)
    out = build_train_transform(32, MEAN, STD, "light")(x)
    distinct = {tuple(o.flatten()[:64].tolist()) for o in out}
    assert len(distinct) > 4


def test_knobs_override_preset() -> None:
    tf = build_train_transform(
        32, MEAN, STD, "light", hflip=False, shift=0.0, rotation=15.0, vflip=True, brightness=0.5
    )
    assert not tf.spec.hflip and tf.spec.rotation == 15.0 and tf.spec.vflip
    assert tf(_batch()).shape == (16, 3, 32, 32)
    with pytest.raises(ConfigError):
        build_train_transform(32, MEAN, STD, "wild")


def test_hflip_only_flips() -> None:
    x = _batch(side=32)
    torch.manual_seed(1)
    out = build_train_transform(32, [0.0], [1.0], "none", hflip=True)(x)
    ref = x.float() / 255
    for o, r in zip(out, ref, strict=True):
        assert torch.allclose(o, r) or torch.allclose(o, r.flip(2))


def test_mix_batch() -> None:
    x = torch.randn(8, 3, 16, 16)
    y = torch.arange(8) % 4
    same, soft = mix_batch(x, y, 4)
    assert same is x and torch.equal(soft.argmax(1), y)
    for mixup, cutmix in [(0.4, 0.0), (0.0, 1.0), (0.2, 1.0)]:
        xm, ym = mix_batch(x, y, 4, mixup, cutmix)
        assert xm.shape == x.shape and ym.shape == (8, 4)
        assert torch.allclose(ym.sum(1), torch.ones(8))
