"""The run-folder contract: unique names, atomic writes, listing and loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.errors import RunError
from cnnlab.runs import Run, atomic_write_text, create_run_dir, list_runs, load_run, write_json


def test_same_name_never_overwrites(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path, "exp")
    (first / "marker").write_text("first")
    second = create_run_dir(tmp_path, "exp")
    third = create_run_dir(tmp_path, "exp")
    assert [first.name, second.name, third.name] == ["exp", "exp-2", "exp-3"]
    assert (first / "marker").read_text() == "first"
    assert (second / "plots").is_dir() and (second / "checkpoints").is_dir()


def test_unsafe_names_are_sanitised(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "../../etc/passwd")
    assert run.parent == tmp_path
    assert create_run_dir(tmp_path, "café 猫").parent == tmp_path


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json(target, {"a": 1, "name": "猫"})
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_load_run_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not found"):
        load_run(tmp_path / "nope")
    run = create_run_dir(tmp_path, "half")
    with pytest.raises(RunError, match=r"model.json.*model.safetensors"):
        load_run(run)


def test_list_runs_reads_folders_with_config(tmp_path: Path) -> None:
    a = create_run_dir(tmp_path, "a")
    (a / "config.yaml").write_text("name: a\n")
    create_run_dir(tmp_path, "not-a-run-yet")
    found = list_runs(tmp_path)
    assert [r.name for r in found] == ["a"]
    assert isinstance(found[0], Run)
    assert found[0].metrics() == []
    assert list_runs(tmp_path / "missing") == []


@pytest.mark.slow
def test_a_default_run_name_holds_the_mode_the_run_trains_in(
    tiny_folder: Path, tmp_path: Path
) -> None:
    """Without --mode the folder was `cnn-auto-<time>` while summary.json, `cnnlab runs` and
    the docs said scratch; the name now uses the resolved mode (``<model>-<mode>-<time>``)."""
    import json
    import re

    import cnnlab
    from cnnlab.engine.fit import default_run_name

    run = cnnlab.train(str(tiny_folder), model__cnn__filters=[8, 16], epochs=1,
                       runs_dir=str(tmp_path / "runs"))  # fmt: skip
    assert run is not None and re.fullmatch(r"cnn-scratch-\d{8}-\d{6}", run.name), run.name
    assert json.loads((run.path / "summary.json").read_text())["mode"] == "scratch"
    assert default_run_name("resnet18", "partial:2").startswith("resnet18-partial2-")
