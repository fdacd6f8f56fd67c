"""``cnnlab lr-find`` through the real command: ranges it refuses, and curves it does not trust.

It used to divide by zero on ``--min-lr 0``, print ``train.lr=nan`` for ``--steps 0``,
accept a falling range, and suggest a rate from 2 training images with full confidence.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import write_folder

TINY = ("model.cnn.filters=[8,16]",)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = str(tmp_path_factory.mktemp("cache"))
    return dict(os.environ, COLUMNS="200", NO_COLOR="1", CNNLAB_CACHE=cache)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 20 images: 42 for training, enough for the test."""
    return write_folder(tmp_path_factory.mktemp("lrf") / "data", classes=3, per_class=20)


def lr_find(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "lr-find", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--min-lr", "0"), "error: --min-lr 0: must be above 0"),
        (("--steps", "0"), "error: --steps 0: need at least 20"),
        (("--steps", "1"), "error: --steps 1: need at least 20"),
        (("--min-lr", "1", "--max-lr", "1e-3"), "error: --max-lr 0.001 must be above --min-lr 1"),
    ],
)
def test_a_range_that_cannot_give_a_rate_is_one_error_line(
    tmp_path: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    out = lr_find(env, str(tmp_path), *args, "--out", str(tmp_path / "lr.png"))  # before the scan
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith(message), out.stderr
    assert "suggested" not in out.stdout and not (tmp_path / "lr.png").exists()


@pytest.mark.slow
def test_two_training_images_are_refused_with_the_reason(
    tmp_path: Path, env: dict[str, str]
) -> None:
    small = write_folder(tmp_path / "small", classes=2, per_class=3)
    out = lr_find(env, str(small), *TINY, "--out", str(tmp_path / "lr.png"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "error: only 2 training image(s): lr-find needs at least 32" in out.stderr
    assert "suggested" not in out.stdout


@pytest.mark.slow
def test_a_loss_that_never_fell_gives_no_rate(
    tmp_path: Path, env: dict[str, str], data: Path
) -> None:
    plot = tmp_path / "lr.png"
    out = lr_find(
        env, str(data), *TINY, "--min-lr", "1e-9", "--max-lr", "1e-8", "--steps", "20",
        "--out", str(plot),
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no trustworthy learning rate: the loss never fell" in out.stdout
    assert "suggested" not in out.stdout and "train with" not in out.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the curve is still there to look at


@pytest.mark.slow
def test_train_with_carries_every_setting_the_rate_was_measured_with(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from cnnlab.api import make_config, short_values

    data = write_folder(tmp_path / "my data", classes=3, per_class=20)  # a space: quoted
    out = lr_find(
        env, str(data), "--model", "cnn", "--img-size", "24", "--seed", "3", *TINY,
        "train.optimizer=adam", "train.lr=0.5", "--steps", "30", "--out", str(tmp_path / "l.png"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rate = float(re.search(r"suggested learning rate: (\S+)", out.stdout).group(1))
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("train with: "))
    argv = shlex.split(line.removeprefix("train with: "))
    assert argv[:3] == ["cnnlab", "train", str(data)]
    named, overrides = argv[3:-3], argv[-3:]
    flags = dict(zip(named[::2], named[1::2], strict=True))
    assert flags == {"--model": "cnn", "--img-size": "24", "--seed": "3", "--batch-size": "8"}
    assert overrides == [*TINY, "train.optimizer=adam", f"train.lr={rate:.3g}"]  # 0.5 replaced
    # run as printed, train resolves the settings lr-find measured with
    values = short_values({k[2:].replace("-", "_"): v for k, v in flags.items()})
    cfg = make_config(argv[2], overrides=overrides, values=values)
    assert (cfg.model.name, cfg.data.img_size, cfg.train.seed) == ("cnn", 24, 3)
    assert (cfg.train.optimizer, cfg.train.batch_size, cfg.train.lr) == ("adam", 8, rate)
    assert cfg.model.cnn.filters == [8, 16]
