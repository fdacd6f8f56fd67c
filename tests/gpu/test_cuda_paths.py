"""What a user's defaults do on a GPU: train, resume, evaluate, predict, explain, export and
find label issues, each on the accelerator, with the numbers the report shows.

Every command is run as a user runs it (the CLI, no ``accelerator`` flag): ``auto`` must find
the GPU. The data are real-shaped (odd class names, mixed sizes, a 3-image class,
duplicates).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.conftest import folder_digest, write_messy_folder, write_photo_folder

CNNLAB = [sys.executable, "-m", "cnnlab"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [*CNNLAB, *args], capture_output=True, text=True, timeout=600,
        env=dict(os.environ, COLUMNS="200", NO_COLOR="1", **(env or {})),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _run_dir(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if (p / "summary.json").is_file()]
    return run


def _test_predictions(run: Path) -> dict[str, str]:
    """The report's test predictions: path relative to the dataset -> predicted class."""
    with open(run / "predictions" / "test.csv", newline="", encoding="utf-8") as fh:
        return {row["path"]: row["pred"] for row in csv.DictReader(fh)}


def _predict(run: Path, data: Path, rel: list[str], tmp: Path, *flags: str) -> dict[str, str]:
    """`cnnlab predict` on the files ``rel`` of ``data``: relative path -> predicted class."""
    out = tmp / f"predict{len(list(tmp.glob('predict*')))}.csv"
    cli("predict", str(run), *(str(data / r) for r in rel), "--out", str(out), *flags)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(rel) and not any(r["error"] for r in rows)
    return {str(Path(r["path"]).relative_to(data)): r["label"] for r in rows}


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_messy_folder(tmp_path_factory.mktemp("gpu") / "messy data")
    for k in range(3):  # more images per class, so every split has some
        write_messy_folder(root.parent / f"more{k}", seed=k + 1)
        for cls in (root.parent / f"more{k}").iterdir():
            for img in cls.iterdir():
                img.rename(root / cls.name / f"{k}_{img.name}")
    return root


@pytest.fixture(scope="module")
def gpu_run(messy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run with the defaults (accelerator auto) on the messy folder."""
    runs = tmp_path_factory.mktemp("runs")
    before = folder_digest(messy)
    cli("train", str(messy), "--epochs", "3", "--img-size", "32", "--runs-dir", str(runs))
    assert folder_digest(messy) == before  # the user's folder is only read
    return _run_dir(runs)


def test_cudnn_autotuning_is_on_for_gpu_runs(messy: Path, tmp_path: Path) -> None:
    """A run's images share one size, so cuDNN's algorithm search pays (1.07-1.44x)."""
    import cnnlab

    torch.backends.cudnn.benchmark = False
    cnnlab.train(messy, runs_dir=str(tmp_path), epochs=1, img_size=32, track__backend="none")
    assert torch.backends.cudnn.benchmark is True


def test_defaults_train_on_the_gpu_in_bf16(gpu_run: Path) -> None:
    summary = json.loads((gpu_run / "summary.json").read_text())
    assert summary["accelerator"] == "gpu"
    expected = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    assert summary["precision"] == expected
    assert summary["complete"] and summary["epochs_run"] == 3
    assert 0.0 <= summary["metrics"]["test"]["accuracy"] <= 1.0


def test_predict_defaults_agree_with_the_report(gpu_run: Path, messy: Path, tmp_path: Path) -> None:
    """`cnnlab predict` without flags (GPU, the run's TTA) gives the report's test labels."""
    reported = _test_predictions(gpu_run)
    assert _predict(gpu_run, messy, sorted(reported), tmp_path) == reported


def test_gpu_and_cpu_predictors_agree(gpu_run: Path) -> None:
    """The same weights on both devices: equal within the GPU's TF32 convolution rounding."""
    from cnnlab.predict import Predictor

    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    gpu, cpu = Predictor(gpu_run), Predictor(gpu_run, device="cpu")
    assert gpu.device.type == "cuda" and cpu.device.type == "cpu"
    p_gpu, p_cpu = gpu.predict_arrays(images), cpu.predict_arrays(images)
    assert p_gpu.device.type == "cpu"  # results come back to the host
    assert torch.allclose(p_gpu, p_cpu, atol=2e-2)
    assert (p_gpu.argmax(1) == p_cpu.argmax(1)).float().mean() >= 0.95


def test_resume_extends_a_gpu_run(gpu_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / gpu_run.name
    shutil.copytree(gpu_run, run)
    cli("train", "--resume", str(run), "--epochs", "4")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_run"] == 4 and summary["accelerator"] == "gpu"


def test_eval_explain_and_export_a_gpu_run(gpu_run: Path, messy: Path, tmp_path: Path) -> None:
    """`eval` re-scores the test split on the GPU to the report's numbers; `explain` and
    `export` work on a GPU-trained run, and the ONNX model predicts what torch does."""
    summary = json.loads((gpu_run / "summary.json").read_text())
    cli("eval", str(gpu_run), "--out", str(tmp_path / "eval"))
    (metrics,) = (tmp_path / "eval").glob("*metrics.json")
    again = json.loads(metrics.read_text())
    for key in ("accuracy", "macro_f1"):
        assert again[key] == pytest.approx(summary["metrics"]["test"][key], abs=1e-9)
    some = [str(messy / r) for r in sorted(_test_predictions(gpu_run))[:4]]
    cli("explain", str(gpu_run), *some, "--out", str(tmp_path / "explain"))
    assert any((tmp_path / "explain").rglob("*.png"))
    cli("export", str(gpu_run))
    rel = sorted(_test_predictions(gpu_run))
    torch_labels = _predict(gpu_run, messy, rel, tmp_path, "--no-tta")
    onnx_labels = _predict(gpu_run, messy, rel, tmp_path, "--no-tta", "--backend", "onnx")
    assert onnx_labels == torch_labels


def test_frozen_features_run_on_the_gpu(tmp_path: Path) -> None:
    """The frozen fast path's backbone pass runs on the GPU; the model is left on the CPU."""
    from cnnlab.data.transforms import build_eval_transform
    from cnnlab.engine.features import compute_features
    from cnnlab.models.registry import create_model

    model = create_model("efficientnet_lite0", num_classes=3, pretrained=True)
    seen: list[str] = []
    model.backbone.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].device.type))
    tf = build_eval_transform(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = torch.randint(0, 256, (40, 3, 64, 64), dtype=torch.uint8)
    feats = compute_features(model.backbone, images, tf, 16)
    assert set(seen) == {"cuda"} and feats.device.type == "cpu"
    assert next(model.parameters()).device.type == "cpu"
    on_cpu = compute_features(model.backbone, images, tf, 16, device="cpu")
    assert torch.allclose(feats, on_cpu, atol=5e-2, rtol=5e-2)


def test_frozen_run_and_data_issues_on_the_gpu(tmp_path: Path) -> None:
    photos = write_photo_folder(tmp_path / "photos", per_class=30)
    runs = tmp_path / "runs"
    cli("train", str(photos), "--model", "efficientnet_lite0", "--mode", "frozen",
        "--epochs", "3", "--img-size", "64", "--runs-dir", str(runs))  # fmt: skip
    run = _run_dir(runs)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["accelerator"] == "gpu" and summary["mode"] == "frozen"
    # the report's test numbers (features on the GPU, head on them) match a GPU Predictor's
    reported = _test_predictions(run)
    predicted = _predict(run, photos, sorted(reported), tmp_path)
    agree = sum(predicted[k] == v for k, v in reported.items())
    assert agree >= 0.95 * len(reported)
    cli("data", "issues", str(photos), "--out", str(tmp_path / "issues"), "--folds", "3")
    assert (tmp_path / "issues" / "issues.csv").is_file()


def test_ddp_strategy_on_one_gpu(messy: Path, tmp_path: Path) -> None:
    """train.strategy=ddp on one GPU: NCCL, SyncBatchNorm layers, one run folder."""
    runs = tmp_path / "runs"
    cli("train", str(messy), "--epochs", "2", "--img-size", "32", "--runs-dir", str(runs),
        "train.strategy=ddp", "train.devices=1")  # fmt: skip
    run = _run_dir(runs)
    assert json.loads((run / "summary.json").read_text())["accelerator"] == "gpu"
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 1
