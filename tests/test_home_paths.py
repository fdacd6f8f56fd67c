"""A ``~`` the shell left alone (``--runs-dir=~/r``, a quoted path, a YAML value) means the
home folder everywhere: it once put a run's files in a literal ``./~/r`` folder while
Lightning wrote the run's checkpoints to ``$HOME/r``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from tests.conftest import folder_digest, write_folder

import cnnlab
from cnnlab.cli import app
from cnnlab.config import load_config

SRC = str(Path(cnnlab.__file__).resolve().parents[1])
# parameters typed str that hold a path (or, for study/tune, `report DIR`)
STR_PATHS = {"data", "runs_dir", "paths", "items", "space", "overrides"}
STR_PATH_COMMANDS = {"study", "tune"}  # only their `overrides` can hold a path (report DIR)


def _params():
    def walk(cmd, prefix):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*prefix, name])
        else:
            for param in cmd.params:
                yield " ".join(prefix), param

    yield from walk(typer.main.get_command(app), [])


def _is_path(command: str, param) -> bool:
    if "Path" in str(param.type_descriptor.annotation):
        return True
    if param.name == "overrides":
        return command in STR_PATH_COMMANDS
    return param.name in STR_PATHS


def test_every_path_option_and_argument_expands_home(tmp_path: Path, monkeypatch) -> None:
    """Enumerates the CLI: a path parameter added later without the expansion fails here."""
    monkeypatch.setenv("HOME", str(tmp_path))
    checked = []
    for command, param in _params():
        if not _is_path(command, param):
            continue
        given = ("~/x",) if param.nargs == -1 else "~/x"
        assert param.callback is not None, f"{command} {param.name}: ~ not expanded"
        got = param.callback(None, param, given)
        got = got[0] if param.nargs == -1 else got
        assert str(got) == str(tmp_path / "x"), f"{command} {param.name}"
        checked.append(f"{command} {param.name}")
    assert {"train runs_dir", "data inspect out", "predict out", "ensemble out"} <= set(checked)


def test_config_paths_expand_home(tmp_path: Path, monkeypatch) -> None:
    """KEY=VALUE overrides and YAML files reach the same folders as the options."""
    monkeypatch.setenv("HOME", str(tmp_path))
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("data:\n  split_file: ~/split.csv\n", encoding="utf-8")
    cfg = load_config(
        yaml_file, overrides=["runs_dir=~/r", "data.root=~/d", "model.weights=~/w.pth"]
    )
    assert cfg.runs_dir == str(tmp_path / "r")
    assert cfg.data.root == str(tmp_path / "d")
    assert cfg.data.split_file == str(tmp_path / "split.csv")
    assert cfg.model.weights == str(tmp_path / "w.pth")
    cfg.runs_dir = "~/again"  # the API sets fields too
    assert cfg.runs_dir == str(tmp_path / "again")
    assert load_config(None, overrides=["runs_dir=runs"]).runs_dir == "runs"


def _cli(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(home), COLUMNS="200", NO_COLOR="1", CNNLAB_TRACK="none")
    env["PYTHONPATH"] = SRC  # another cwd: a relative PYTHONPATH would miss this checkout
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
    )  # fmt: skip


def test_data_inspect_out_with_an_unexpanded_home(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir(parents=True)
    write_folder(home / "base", classes=2, per_class=6)
    before = folder_digest(home / "base")
    out = _cli(["data", "inspect", "~/base", "--out", "~/aud"], home, cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (home / "aud" / "audit.html").is_file()
    assert list(cwd.iterdir()) == []  # no literal ./~ folder
    assert folder_digest(home / "base") == before


@pytest.mark.slow
def test_train_keeps_one_run_folder_under_home(tmp_path: Path) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    cwd.mkdir(parents=True)
    data = write_folder(tmp_path / "data", classes=2, per_class=8)
    args = ["train", str(data), "--epochs", "1", "--name", "t", "--runs-dir=~/r", "--quiet"]
    out = _cli([*args, "model.cnn.filters=[8,16]"], home, cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    run = home / "r" / "t"
    for name in ("config.yaml", "summary.json", "report.html", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    assert list(cwd.iterdir()) == []
    assert f"runs_dir: {home / 'r'}" in (run / "config.yaml").read_text(encoding="utf-8")
