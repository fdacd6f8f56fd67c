"""An interrupted ``cnnlab ensemble`` leaves a complete ensemble folder or none: a killed build
is named incomplete by predict and eval, and a build with the same ``--out`` replaces it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.ensemble import folder as ensemble_folder
from cnnlab.ensemble.folder import build_ensemble, is_ensemble
from cnnlab.runs import BUILDING

# A real build, killed outright (as kill -9 would) once its numbers are written, before its
# report: the point where the folder used to look finished to predict.
KILLED_BUILD = """
import os, signal, sys
import cnnlab.ensemble.report as report
report.write_ensemble_report = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
from cnnlab.ensemble.folder import build_ensemble
build_ensemble(sys.argv[1:3], method="soft", out=sys.argv[3])
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def _one_error(proc: subprocess.CompletedProcess[str], words: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and words in lines[0], lines[0]


def test_a_killed_build_is_incomplete_everywhere_and_rebuilt(members, tmp_path: Path) -> None:
    a, b, out = str(members["a"]), str(members["b"]), tmp_path / "ens"
    killed = subprocess.run([sys.executable, "-c", KILLED_BUILD, a, b, str(out)], timeout=600)
    assert killed.returncode == -9
    assert (out / BUILDING).is_file() and (out / "ensemble.json").is_file()
    assert not is_ensemble(out)
    image = next((members["data"] / "class_0").iterdir())
    _one_error(_cli("predict", str(out), str(image)), "incomplete ensemble folder")
    _one_error(_cli("eval", str(out)), "incomplete ensemble folder")
    again = _cli("ensemble", a, b, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "replacing the incomplete ensemble" in again.stderr + again.stdout
    assert is_ensemble(out) and not (out / BUILDING).exists() and (out / "report.html").is_file()


def test_an_interrupted_build_leaves_no_folder(
    members, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    import cnnlab.ensemble.report as report

    monkeypatch.setattr(report, "write_ensemble_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_ensemble([members["a"], members["b"]], out=tmp_path / "ens")
    assert not (tmp_path / "ens").exists()
    with pytest.raises(KeyboardInterrupt):  # the default folder under runs_dir goes too
        build_ensemble([members["a"], members["b"]], runs_dir=tmp_path / "runs")
    assert list((tmp_path / "runs").iterdir()) == []
    assert ensemble_folder.is_ensemble(members["a"]) is False
