"""Output files get the mode a plain ``open()`` gives (0o666 less the umask), not 0600.

Atomic writes used to go through ``tempfile.mkstemp``, whose files are private whatever the
umask, so on a shared machine a colleague (or a web server) could list a run folder but not
open its report or model.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnnlab.atomic import atomic_path, atomic_write_bytes, atomic_write_text, temp_target


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """``os.umask`` for one test; the process umask is restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(("mask", "want"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask, mask: int, want: int) -> None:
    umask(mask)
    atomic_write_text(tmp_path / "a.json", "{}")
    atomic_write_bytes(tmp_path / "b.bin", b"\0")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what the user's own tools would make
    assert _mode(tmp_path / "a.json") == _mode(tmp_path / "b.bin") == _mode(plain) == want


def test_temp_names_are_still_recognised(tmp_path: Path) -> None:
    """remove_leftovers finds a killed write's temp file by its name: keep the pattern."""
    with atomic_path(tmp_path / "x.csv") as tmp:
        assert temp_target(tmp.name) == "x.csv"
        assert tmp.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


@pytest.mark.slow
def test_a_trained_run_is_readable_by_others(tiny_folder: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    train = [sys.executable, "-m", "cnnlab", "train", str(tiny_folder), "--epochs", "1"]
    train += ["--name", "t", "--runs-dir", str(runs), "--quiet", "model.cnn.filters=[8,16]"]
    out = subprocess.run(
        train, capture_output=True, text=True, env=env, preexec_fn=lambda: os.umask(0o022)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    run = runs / "t"
    pred = tmp_path / "pred.csv"
    predict = [sys.executable, "-m", "cnnlab", "predict", str(run), str(tiny_folder)]
    out = subprocess.run(
        [*predict, "--out", str(pred)],
        capture_output=True, text=True, env=env, preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    files = ["summary.json", "model.safetensors", "report.html", "predictions/test.csv"]
    files += ["config.yaml", "checkpoints/last.ckpt", "plots/learning_curves.png"]
    modes = {name: oct(_mode(run / name)) for name in files}
    assert modes == {name: oct(0o644) for name in files}
    assert _mode(pred) == 0o644
    assert _mode(run) == _mode(run / "plots") == 0o755
