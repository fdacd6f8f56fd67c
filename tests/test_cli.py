"""The command line through real subprocesses: startup, errors, and the train -> predict loop."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import RUN_FILES, folder_digest

CNNLAB = [sys.executable, "-m", "cnnlab"]


def cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [*CNNLAB, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def test_help_lists_every_command() -> None:
    out = cli("--help")
    assert out.returncode == 0, out.stderr
    for command in (
        "demo",
        "train",
        "eval",
        "predict",
        "runs",
        "models",
        "export",
        "data",
        "lr-find",
    ):
        assert command in out.stdout


@pytest.mark.parametrize(
    "command",
    [
        "train",
        "eval",
        "predict",
        "runs",
        "models",
        "export",
        "demo",
        "lr-find",
        "explain",
        "ensemble",
        "data inspect",
        "data demo",
    ],
)
def test_every_command_has_help_with_example(command: str) -> None:
    out = cli(*command.split(), "--help")
    assert out.returncode == 0, out.stderr
    assert "Example" in out.stdout


def test_startup_imports_no_heavy_library() -> None:
    code = (
        "import sys, cnnlab.cli; heavy = [m for m in ('torch', 'timm', 'lightning', "
        "'torchvision', 'sklearn', 'matplotlib') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_config_error_is_one_line_before_any_work(tiny_folder: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    out = cli("train", str(tiny_folder), "train.lrr=0.1", "--runs-dir", str(runs))
    assert out.returncode == 2
    assert "did you mean 'train.lr'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not runs.exists()


def test_missing_dataset_is_a_clear_error(tmp_path: Path) -> None:
    out = cli("train", str(tmp_path / "nowhere"), "--runs-dir", str(tmp_path / "runs"))
    assert out.returncode == 2
    assert "nowhere" in out.stderr and "Traceback" not in out.stderr


def test_unknown_model_lists_close_names(tiny_folder: Path, tmp_path: Path) -> None:
    out = cli("train", str(tiny_folder), "--model", "resnet1", "--runs-dir", str(tmp_path / "r"))
    assert out.returncode == 2
    assert "resnet18" in out.stderr and "Traceback" not in out.stderr


def test_runs_on_empty_folder(tmp_path: Path) -> None:
    out = cli("runs", "--runs-dir", str(tmp_path))
    assert out.returncode == 0
    assert "no runs" in out.stdout


@pytest.mark.slow
def test_train_writes_a_complete_run_and_predict_agrees(tiny_folder: Path, tmp_path: Path) -> None:
    before = folder_digest(tiny_folder)
    runs = tmp_path / "runs"
    args = (
        "train",
        str(tiny_folder),
        "--epochs",
        "2",
        "--name",
        "t",
        "--runs-dir",
        str(runs),
        "--quiet",
        "train.batch_size=16",
    )
    out = cli(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    run = runs / "t"
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    for split in ("val", "test"):
        assert 0.0 <= summary["metrics"][split]["accuracy"] <= 1.0
        assert 0.0 <= summary["metrics"][split]["macro_f1"] <= 1.0
    assert summary["num_classes"] == 3 and summary["model"] == "cnn"
    assert summary["mode"] == "scratch" and summary["best_epoch"] in (1, 2)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 2 and "val/macro_f1" in rows[0]
    # the printed results give each number with the interval its images allow
    test = json.loads((run / "plots" / "test_metrics.json").read_text())
    acc, (low, high) = test["accuracy"], test["accuracy_ci"]
    assert low <= acc <= high and f"{acc:.4f} ({low:.3f}-{high:.3f})" in out.stdout
    assert "95% interval" in out.stdout

    # A second run with the same name gets its own folder.
    assert cli(*args).returncode == 0
    assert (runs / "t-2" / "summary.json").is_file()
    assert json.loads((run / "summary.json").read_text()) == summary

    # The evaluation inside training and a fresh Predictor agree image by image.
    import cnnlab

    predictor = cnnlab.load(str(run))
    saved = list(csv.DictReader((run / "predictions" / "test.csv").open(encoding="utf-8")))
    paths = [str(tiny_folder / r["path"]) for r in saved]
    fresh = predictor.predict(paths, tta=summary["tta"] is not None)
    assert [r["label"] for r in fresh] == [r["pred"] for r in saved]

    listed = cli("runs", "--runs-dir", str(runs))
    assert listed.returncode == 0 and "t-2" in listed.stdout
    assert folder_digest(tiny_folder) == before


@pytest.mark.slow
def test_predict_with_default_arguments_matches_the_report(tiny_folder: Path, tmp_path: Path):
    """Issue 10 item 7: one TTA default (the model card's) for the report and `cnnlab predict`."""
    runs = tmp_path / "runs"
    out = cli("train", str(tiny_folder), "--epochs", "2", "--name", "d", "--runs-dir", str(runs))
    assert out.returncode == 0, out.stdout + out.stderr
    run = runs / "d"
    card = json.loads((run / "model.json").read_text(encoding="utf-8"))
    assert card["tta"] == "hflip"  # trained with defaults: flips, so flip TTA is on
    with (run / "predictions" / "test.csv").open(encoding="utf-8") as fh:
        saved = list(csv.DictReader(fh))
    images = [str(tiny_folder / r["path"]) for r in saved]
    predicted = tmp_path / "predict.csv"
    out = cli("predict", str(run), *images, "--out", str(predicted))
    assert out.returncode == 0, out.stdout + out.stderr
    with predicted.open(encoding="utf-8") as fh:
        fresh = list(csv.DictReader(fh))
    assert [r["path"] for r in fresh] == images
    for mine, report in zip(fresh, saved, strict=True):
        assert mine["label"] == report["pred"], mine["path"]
        assert float(mine["prob"]) == pytest.approx(float(report["prob"]), abs=2e-6), mine["path"]


@pytest.mark.slow
def test_training_leaves_the_warning_filters_alone(tiny_folder: Path, tmp_path: Path) -> None:
    """Library code scopes its warning filters to the calls that need them.

    torch, numpy and friends add filters of their own when imported, so the check is on the
    filters cnnlab itself needs (Lightning notices during fit): none may outlive the call.
    """
    code = (
        "import sys, warnings; import cnnlab; "
        "cnnlab.train(sys.argv[1], epochs=1, runs_dir=sys.argv[2], model__cnn__filters=[8, 16]);"
        " print([f[1].pattern for f in warnings.filters if f[1] is not None])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tiny_folder), str(tmp_path / "runs")],
        capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    patterns = out.stdout.strip().splitlines()[-1]
    for silenced in ("LeafSpec", "in eval mode", "Checkpoint directory"):
        assert silenced not in patterns
