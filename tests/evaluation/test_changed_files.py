"""``cnnlab eval RUN`` tells test images rewritten since training (same path, other bytes)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tests.conftest import folder_digest, write_messy_folder

from cnnlab.evaluation.evaluate import evaluate_run

SRC = str(Path(__file__).resolve().parents[2] / "src")


def cli(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="400", NO_COLOR="1", PYTHONPATH=SRC)
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *map(str, args)], capture_output=True, text=True, env=env
    )


def _rows(run: Path, split: str) -> list[dict[str, str]]:
    with (run / "split.csv").open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def _repaint(path: Path) -> None:
    """Edit an image in place, as a photo editor would: same path and format, other pixels."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB")).copy()
    pixels[: pixels.shape[0] // 2] = 255 - pixels[: pixels.shape[0] // 2]
    Image.fromarray(pixels).save(path)


def test_eval_warns_about_test_images_rewritten_since_training(tmp_path: Path) -> None:
    import cnnlab

    data = write_messy_folder(tmp_path / "original")  # odd names, duplicates, a tiny class
    data = Path(shutil.copytree(data, tmp_path / "data copy"))
    run = cnnlab.train(str(data), model="tiny_cnn", epochs=1, seed=0, batch_size=8,
                       runs_dir=str(tmp_path / "runs")).path  # fmt: skip
    tests = _rows(run, "test")
    assert len(tests) >= 2 and all(len(r["sha1"]) == 40 for r in tests)

    before = folder_digest(data)
    same = cli("eval", run)
    assert same.returncode == 0, same.stderr
    assert "changed since" not in same.stderr + same.stdout
    assert json.loads((run / "eval-test" / "metrics.json").read_text(encoding="utf-8"))
    assert folder_digest(data) == before  # eval only reads the dataset

    _repaint(data / tests[0]["path"])
    before = folder_digest(data)
    done = cli("eval", run)
    assert done.returncode == 0, done.stderr  # scored as it is now, like a folder's new files
    assert f"1 of the {len(tests)} 'test' images changed since the run was trained" in done.stderr
    assert tests[0]["path"] in done.stderr and "1 changed since training" in done.stdout
    report = (run / "eval-test-2" / "report.md").read_text(encoding="utf-8")
    assert "changed since training" in report and tests[0]["path"] in report
    assert folder_digest(data) == before

    result = evaluate_run(run, split="test")
    assert list(result["changed"]) == [tests[0]["path"]] and result["changed_files"] == 1
    assert evaluate_run(run, split="val")["changed"] == {}  # the edit was in test alone


def test_a_split_csv_without_digests_is_evaluated_as_before(tiny_run: Path) -> None:
    """Runs trained before split.csv recorded sha1: nothing to compare, nothing refused."""
    data = tiny_run.parent.parent / "data"
    first = next(r for r in _rows(tiny_run, "test"))
    assert "sha1" not in first
    _repaint(data / first["path"])
    result = evaluate_run(tiny_run)
    assert result["changed"] == {} and result["changed_files"] == 0
    assert result["num_samples"] == len(_rows(tiny_run, "test"))
