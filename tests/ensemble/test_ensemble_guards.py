"""What an ensemble refuses: writing into the data, members that changed since it was built,
members that could not predict, and being exported as one file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import folder_digest

from .conftest import ODD_CLASS

SRC = str(Path(__file__).resolve().parents[2] / "src")


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONPATH=SRC)
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd,
    )  # fmt: skip


def _copy(members: dict[str, Path], key: str, tmp_path: Path) -> Path:
    """A member copied beside the test (so the package's shared runs stay untouched)."""
    return Path(shutil.copytree(members[key], tmp_path / f"{key} copy"))


def test_out_and_runs_dir_inside_a_members_dataset_are_refused(members, tmp_path) -> None:
    data = members["data"]
    before = folder_digest(data)
    inside_out = cli("ensemble", members["a"], members["b"], "--out", data / "ens")
    inside_runs = cli("ensemble", members["a"], members["b"], "--runs-dir", data / ODD_CLASS)
    for done in (inside_out, inside_runs):
        assert done.returncode == 2, done.stderr
        assert "cnnlab never writes into your data" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--out" in inside_out.stderr and "--runs-dir" in inside_runs.stderr
    # the default `runs`, from a working folder inside the dataset, goes beside it instead
    done = cli("ensemble", members["a"], members["b"], cwd=data / ODD_CLASS)
    assert done.returncode == 0, done.stderr
    made = Path(done.stdout.split("ensemble folders go to ")[1].split(":")[0]) / "ensemble-soft"
    assert made.parent == data.parent / "runs" and (made / "ensemble.json").is_file()
    shutil.rmtree(made)  # the package's member runs live beside it: remove only this one
    assert folder_digest(data) == before  # nothing written, not even an empty folder
