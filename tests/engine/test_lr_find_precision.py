"""The lr range test, and the precision / memory-format choices."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from engine_helpers import loader, make_module, separable_images

from cnnlab.engine.lr_find import lr_find, plot_lr_find, suggest_lr
from cnnlab.engine.precision import (
    cpu_has_native_bf16,
    resolve_channels_last,
    resolve_precision,
)
from cnnlab.errors import ConfigError


def test_lr_find_suggests_a_finite_lr_and_restores_weights(tmp_path: Path, cpu_train) -> None:
    x, y = separable_images(64)
    module = make_module(cpu_train.model_copy(update={"optimizer": "sgd"}), 4)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.random.get_rng_state()
    lrs, losses, suggestion = lr_find(module, loader(x, y, shuffle=True), 1e-4, 10.0, num_steps=40)
    assert 5 < len(lrs) <= 40 and lrs == sorted(lrs)
    assert all(math.isfinite(v) for v in losses)
    assert math.isfinite(suggestion) and 1e-4 <= suggestion <= 10.0
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())
    assert torch.equal(rng, torch.random.get_rng_state())
    png = plot_lr_find(lrs, losses, suggestion, tmp_path / "plots" / "lr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_suggestion_is_the_steepest_descent() -> None:
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert suggest_lr(lrs, [2.0, 1.9, 1.0, 0.9, 5.0]) == 1e-3  # the drop between 1e-3 and 1e-2


def test_explicit_precision_passes_through() -> None:
    for value in ("32", "bf16-mixed", "16-mixed"):
        assert resolve_precision(value, "cpu") == value
    with pytest.raises(ConfigError, match="bf16-mixed"):
        resolve_precision("64", "cpu")


def test_auto_precision_on_cpu_follows_the_hardware() -> None:
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if cpu_has_native_bf16() else "32")
    # bf16 without channels_last was measured slower than fp32 here: auto avoids it
    assert resolve_precision("auto", "cpu", channels_last=False) == "32"
    if not torch.cuda.is_available():
        assert resolve_precision("auto", "gpu") == "32"


def test_channels_last_setting() -> None:
    assert resolve_channels_last("true", "cpu") and not resolve_channels_last("false", "cpu")
    assert resolve_channels_last(True, "gpu") and resolve_channels_last("auto", "cpu")
    with pytest.raises(ConfigError):
        resolve_channels_last("maybe", "cpu")


def test_auto_trains_depthwise_nets_in_fp32_on_cpu() -> None:
    from cnnlab.engine.precision import prefers_fp32_training
    from cnnlab.models.registry import create_model

    lite = create_model("efficientnet_lite0", num_classes=3)
    plain = create_model("cnn", num_classes=3, img_size=32)
    assert prefers_fp32_training(lite, "cpu")
    assert not prefers_fp32_training(plain, "cpu")
    assert not prefers_fp32_training(lite, "gpu")


def test_explicit_bf16_on_a_cpu_without_native_bf16_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnlab.engine import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"  # the user's choice stands
    err = capsys.readouterr().err
    assert "bf16-mixed" in err and "emulated" in err and "auto picks 32" in err
    for setting in ("32", "auto"):
        assert resolve_precision(setting, "cpu") == "32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert capsys.readouterr().err == ""
