"""Training on real-shaped folders: duplicates, outputs beside the data, files that vanish,
split vs training seed, and reports that never name the user's folders (issue 10)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder, write_messy_folder
from typer.testing import CliRunner

import cnnlab
from cnnlab.errors import ConfigError

TINY = ["model.cnn.filters=[8,16]", "train.batch_size=16", "--epochs", "1"]
TINY_KW = {"epochs": 1, "batch_size": 16, "model__cnn__filters": [8, 16]}


def _cli(*args: str):
    from cnnlab.cli import app

    return CliRunner().invoke(app, list(args))


def _split_rows(run_dir: Path) -> dict[str, str]:
    with open(run_dir / "split.csv", newline="", encoding="utf-8") as fh:
        return {row["path"]: row["split"] for row in csv.DictReader(fh)}


@pytest.mark.slow
def test_cli_train_with_duplicates_runs_and_warns_with_counts(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_folder(root / "train", classes=3, per_class=8)
    write_folder(root / "val", classes=3, per_class=3, seed=2)  # no carving: splits as given
    write_folder(root / "test", classes=3, per_class=3, seed=1)
    # Two images also in the test split (leakage), one under a second class (conflict).
    shutil.copy(root / "train/class_0/img_000.png", root / "test/class_0/leak_a.png")
    shutil.copy(root / "train/class_1/img_000.png", root / "test/class_1/leak_b.png")
    shutil.copy(root / "train/class_0/img_001.png", root / "train/class_2/conflict.png")
    before = folder_digest(root)
    result = _cli("train", str(root), *TINY, "--runs-dir", str(tmp_path / "runs"), "--name", "d")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "2 group(s) of identical images span more than one split (leakage)" in text
    assert "1 group(s) of identical images carry more than one class (label conflict)" in text
    report = json.loads((tmp_path / "runs/d/data_report.json").read_text(encoding="utf-8"))
    assert report["audit"]["leakage"] == 2 and report["audit"]["label_conflicts"] == 1
    assert folder_digest(root) == before


def test_runs_dir_and_cache_inside_the_dataset_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=6)
    before = folder_digest(root)
    with pytest.raises(ConfigError, match=r"runs_dir .* inside the dataset folder"):
        cnnlab.train(root, runs_dir=root / "class_0" / "runs", **TINY_KW)
    monkeypatch.setenv("CNNLAB_CACHE", str(root / ".cache"))
    with pytest.raises(ConfigError, match=r"CNNLAB_CACHE .* inside the dataset folder"):
        cnnlab.train(root, runs_dir=tmp_path / "runs", **TINY_KW)
    result = _cli("data", "inspect", str(root))
    assert result.exit_code == 2 and "inside the dataset folder" in result.output
    assert folder_digest(root) == before


@pytest.mark.slow
def test_lr_find_plot_never_lands_in_the_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_folder(tmp_path / "ds", classes=2, per_class=24)  # lr-find needs 32 to train
    before = folder_digest(root)
    args = ["lr-find", str(root), "model.cnn.filters=[8,16]", "--steps", "20", "--batch-size", "8"]
    refused = _cli(*args, "--out", str(root / "class_0" / "lr.png"))
    assert isinstance(refused.exception, ConfigError), refused.output
    assert "inside the dataset folder" in str(refused.exception)
    monkeypatch.chdir(root)
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lr_find.png").is_file()
    # a second search keeps the first plot: the default name moves on, nothing is refused
    first = (tmp_path / "lr_find.png").read_bytes()
    again = _cli(*args)
    assert again.exit_code == 0 and "lr_find-2.png" in again.output, again.output
    assert (tmp_path / "lr_find.png").read_bytes() == first
    assert folder_digest(root) == before


@pytest.mark.slow
def test_default_outputs_land_outside_the_dataset_and_reports_hold_no_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_messy_folder(tmp_path / "my data")
    before = folder_digest(root)
    monkeypatch.chdir(root / "tiny")  # the user works from inside the dataset
    run = cnnlab.train(root, **TINY_KW)
    assert not run.path.resolve().is_relative_to(root.resolve())
    assert run.path.resolve().parent == (tmp_path / "runs").resolve()
    assert folder_digest(root) == before
    again = cnnlab.train(root, runs_dir=tmp_path / "runs", **TINY_KW)
    assert _split_rows(again.path) == _split_rows(run.path)  # the scan saw no new files
    for name in ("data_report.json", "model.json", "summary.json", "report.html", "report.md"):
        text = (run.path / name).read_text(encoding="utf-8")
        assert str(tmp_path) not in text, name
    report = json.loads((run.path / "data_report.json").read_text(encoding="utf-8"))
    assert report["root"] == "my data"


@pytest.mark.slow
def test_cache_off_file_deleted_after_the_scan_is_skipped_and_the_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import cnnlab.data.scan as scan_module

    root = tmp_path / "ds"
    write_folder(root / "train", classes=2, per_class=8)
    write_folder(root / "test", classes=2, per_class=3, seed=1)
    gone = ["train/class_0/img_003.png", "test/class_1/img_002.png"]
    real_scan = scan_module.scan_dataset

    def scan_then_delete(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        for rel in gone:
            (root / rel).unlink(missing_ok=True)
        return result

    monkeypatch.setattr(scan_module, "scan_dataset", scan_then_delete)
    run = cnnlab.train(root, runs_dir=tmp_path / "runs", data__cache="off", **TINY_KW)
    assert (run.path / "report.html").is_file() and run.summary["complete"]
    err = capfd.readouterr().err.replace("\n", "")
    for rel in gone:
        assert rel in err
    report = json.loads((run.path / "data_report.json").read_text(encoding="utf-8"))
    assert {s["path"] for s in report["skipped_at_load"]} >= {gone[1]}
    with open(run.path / "predictions" / "test.csv", encoding="utf-8") as fh:
        assert gone[1] not in fh.read()
    assert run.summary["images"]["test"] == 5


@pytest.mark.slow
def test_train_seed_never_moves_the_split_split_seed_does(tmp_path: Path) -> None:
    from cnnlab.config import load_config
    from cnnlab.engine.setup import prepare_data

    root = write_folder(tmp_path / "ds", classes=3, per_class=10)
    runs = tmp_path / "runs"
    a = cnnlab.train(root, runs_dir=runs, seed=1, **TINY_KW)
    b = cnnlab.train(root, runs_dir=runs, seed=2, **TINY_KW)
    assert _split_rows(a.path) == _split_rows(b.path)
    other = load_config(overrides=[f"data.root={root}", "data.split_seed=7"]).data
    moved = {s.path: s.split for s in prepare_data(other, 32).split.samples}
    assert moved.keys() == _split_rows(a.path).keys() and moved != _split_rows(a.path)


@pytest.mark.slow
def test_frozen_features_recomputed_when_an_image_is_replaced_keeping_size_and_mtime(
    tmp_path: Path,
) -> None:
    from cnnlab.paths import cache_dir

    root = write_folder(tmp_path / "ds", classes=2, per_class=8, ext=".bmp")  # equal sizes
    kw = {"runs_dir": tmp_path / "runs", "mode": "frozen", "pretrained": False, **TINY_KW}
    cnnlab.train(root, **kw)
    entries = set(cache_dir("features").glob("*.safetensors"))
    target, other = root / "class_0/img_000.bmp", root / "class_1/img_005.bmp"
    st = target.stat()
    shutil.copyfile(other, target)  # what `cp -p` leaves: same size, same mtime
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    cnnlab.train(root, **kw)
    assert len(set(cache_dir("features").glob("*.safetensors")) - entries) == 3  # 3 splits
