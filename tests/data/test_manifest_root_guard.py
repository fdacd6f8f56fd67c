"""Outputs stay out of the dataset a manifest's ``root`` column names.

``data issues`` writes clean.csv beside the dataset and names the dataset in a root column.
The rule "never write inside the dataset" checked the CSV's own folder instead, so
``train clean.csv --runs-dir DATASET/runs`` (and the default ``runs`` of a user working inside
the dataset) wrote run folders into the data, which the next scan then met.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder

import cnnlab
from cnnlab.data.issues_index import record_issues
from cnnlab.data.scan import scan_dataset
from cnnlab.errors import ConfigError
from cnnlab.paths import dataset_folder

TINY = {"epochs": 1, "img_size": 16, "model": "tiny_cnn", "eval__explain": False,
        "eval__worst_mistakes": 0}  # fmt: skip


def _clean_csv(data: Path, out: Path) -> Path:
    """A clean.csv as ``data issues`` leaves it: beside the dataset, naming it as its root."""
    record_issues(scan_dataset(data, progress=False), out, {})
    rows = sorted((p.relative_to(data).as_posix(), p.parent.name) for p in data.glob("*/*.png"))
    out.mkdir(parents=True, exist_ok=True)
    with (out / "clean.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "root"])
        writer.writerows([rel, label, os.path.relpath(data, out)] for rel, label in rows)
    return out / "clean.csv"


def test_runs_dir_inside_the_root_a_manifest_names_is_refused(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "my data", classes=3, per_class=6, size=16)
    clean = _clean_csv(data, tmp_path / "data_issues" / "my data")
    before = folder_digest(data)
    assert dataset_folder(clean) == data.resolve()
    with pytest.raises(ConfigError, match="inside the dataset folder"):
        cnnlab.train(str(clean), runs_dir=str(data / "runs"), **TINY)
    assert folder_digest(data) == before


def test_a_run_trained_on_clean_csv_is_evaluated_and_exported_on_its_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its runs folder moves beside the dataset the root column names, and eval and export's
    parity check read the images from there (they looked beside clean.csv: "none of the 38
    images could be read", and a parity check on random images)."""
    from cnnlab.evaluation.evaluate import evaluate_run
    from cnnlab.export import _split_paths

    data = write_folder(tmp_path / "set", classes=3, per_class=6, size=16)
    clean = _clean_csv(data, tmp_path / "issues")
    before = folder_digest(data)
    monkeypatch.chdir(data)  # a user working from inside the dataset
    run = cnnlab.train(str(clean), **TINY)
    assert run is not None and not run.path.resolve().is_relative_to(data.resolve())
    got = evaluate_run(run.path, out_dir=tmp_path / "ev")
    test = run.summary["metrics"]["test"]
    assert got["skipped"] == [] and got["num_samples"] == test["num_samples"]
    assert got["accuracy"] == test["accuracy"]
    paths = _split_paths(run.path, 4)
    assert paths and all(p.is_file() and p.resolve().is_relative_to(data.resolve()) for p in paths)
    assert folder_digest(data) == before


def test_a_manifest_without_a_root_column_is_its_own_folder(tmp_path: Path) -> None:
    data = write_folder(tmp_path / "set", classes=2, per_class=3, size=16)
    labels = data / "labels.csv"
    labels.write_text("path,label\nclass_0/img_000.png,class_0\n", encoding="utf-8")
    assert dataset_folder(labels) == data.resolve()
    broken = tmp_path / "broken.csv"  # unreadable as a manifest: its own folder, no crash
    broken.write_bytes(b"\xff\xfe\x00bad")
    assert dataset_folder(broken) == tmp_path.resolve()
