"""The lr range test, and the precision / memory-format choices."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from engine_helpers import loader, make_module, separable_images

from cnnlab.engine.lr_find import (
    MIN_IMAGES,
    MIN_STEPS,
    WARMUP,
    caveats,
    check_images,
    check_range,
    distrust,
    lr_find,
    plot_lr_find,
    suggest_lr,
)
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


def _curve(losses: list[float]) -> tuple[list[float], list[float]]:
    return [10 ** (-6 + 6 * i / (len(losses) - 1)) for i in range(len(losses))], losses


def test_the_moving_averages_warm_up_is_left_out_of_the_suggestion() -> None:
    # the average of the first few batches (1.4 -> 1.02) looks steeper than the real descent
    lrs, losses = _curve([1.4, 1.3, 1.05, 1.02] + [1.02] * 8 + [1.0, 0.93, 0.88, 0.85] + [0.8] * 4)
    assert suggest_lr(lrs, losses) == lrs[1]
    assert suggest_lr(lrs, losses, skip=WARMUP) == lrs[13]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 1.0, 100), "--min-lr 0: must be above 0"),
        ((-1e-3, 1.0, 100), "--min-lr -0.001: must be above 0"),
        ((1.0, 1e-3, 100), "--max-lr 0.001 must be above --min-lr 1"),
        ((1e-6, 1e-6, 100), "--max-lr 1e-06 must be above --min-lr 1e-06"),
        ((1e-6, math.nan, 100), "--max-lr nan must be above"),
        ((1e-6, 1.0, 0), "--steps 0: need at least 20"),
        ((1e-6, 1.0, 1), "--steps 1: need at least 20"),
        ((1e-6, 1.0, MIN_STEPS - 1), f"--steps {MIN_STEPS - 1}: need at least 20"),
    ],
)
def test_a_range_that_cannot_give_a_suggestion_is_refused(args: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        check_range(*args)
    check_range(1e-6, 1.0, MIN_STEPS)


def test_too_few_training_images_are_refused() -> None:
    with pytest.raises(ConfigError, match="only 2 training image"):
        check_images(2)
    check_images(MIN_IMAGES)


def test_a_curve_without_a_trustworthy_suggestion_says_why() -> None:
    assert "NaN or infinite from the first step" in distrust([], [], 100)
    lrs, losses = _curve([1.0 - i / 100 for i in range(MIN_STEPS - 1)])
    assert "diverged (or became NaN) after 19 of 100 steps" in distrust(lrs, losses, 100)
    lrs, losses = _curve([1.1] * 10 + [1.09, 1.08, 1.09, 1.07] * 5)  # noise, no descent
    assert distrust(lrs, losses, 30).startswith("the loss never fell (from 1.09 to at best 1.07)")
    lrs, losses = _curve([1.1] * 12 + [1.0, 0.8, 0.6, 0.5, 0.45, 0.5, 0.7, 1.5])
    assert distrust(lrs, losses, 20) is None
    assert caveats(lrs, losses, suggest_lr(lrs, losses, skip=WARMUP)) == []


def test_a_suggestion_at_an_end_of_the_range_comes_with_a_note() -> None:
    lrs, losses = _curve([1.1] * 11 + [0.9, 0.8, 0.75, 0.72, 0.7, 0.69, 0.68, 0.67, 0.66])
    notes = caveats(lrs, losses, suggest_lr(lrs, losses, skip=WARMUP))
    assert [n.split(":")[0] for n in notes] == [
        "the loss fell fastest at the bottom of the range",
        "the loss was still falling at --max-lr",
    ]


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
