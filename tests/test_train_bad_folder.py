"""`cnnlab train` on a messy folder trains on the good files and reports every bad one."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from tests.conftest import folder_digest, write_folder
from tests.data.data_badfiles import bad_files, write_bytes

import cnnlab


@pytest.mark.slow
def test_train_skips_bad_files_and_leaves_the_folder_untouched(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "messy", classes=3, per_class=14)
    expected = {}
    for i, (name, (data, reason)) in enumerate(sorted(bad_files().items())):
        rel = f"class_{i % 3}/{name}"
        write_bytes(root / rel, data)
        expected[rel] = reason
    write_bytes(root / ".DS_Store", b"junk")
    write_bytes(root / "class_0" / "._img_000.png", b"resource fork")
    before = folder_digest(root)
    for dirpath, _, files in os.walk(root):  # the user's folder is read-only to us
        for name in files:
            os.chmod(Path(dirpath, name), stat.S_IREAD)
    run = cnnlab.train(root, epochs=1, runs_dir=tmp_path / "runs", name="messy",
                       model__cnn__filters=[8, 16], batch_size=16)  # fmt: skip
    report = json.loads((run.path / "data_report.json").read_text())
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert skipped == expected
    summary = run.summary
    assert summary["skipped_files"] == len(expected)
    assert sum(summary["images"].values()) == 3 * 14
    html = (run.path / "report.html").read_text(encoding="utf-8")
    for rel in expected:
        assert Path(rel).name in html
    assert folder_digest(root) == before
