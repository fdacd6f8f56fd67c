"""A finished run folder built by hand, per the run-folder contract in docs/architecture.md.

Weights are a random initialisation: evaluation, prediction and export must work on any
weights, and parity checks need no training.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file
from tests.conftest import write_folder

CLASSES = ["class_0", "class_1", "class_2"]


def _split_rows(root: Path) -> list[tuple[str, str, str]]:
    rows = []
    for label in CLASSES:
        files = sorted((root / label).iterdir())
        for i, f in enumerate(files):
            split = "test" if i < 3 else "val" if i < 5 else "train"
            rows.append((f.relative_to(root).as_posix(), label, split))
    return rows


def build_run(
    tmp: Path,
    model: str = "tiny_cnn",
    img_size: int = 32,
    resize: int = 36,
    tta: str | None = "hflip",
    seed: int = 0,
) -> Path:
    """Write data + a run folder for ``model`` and return the run folder."""
    from cnnlab.models.registry import create_model

    root = write_folder(tmp / "data", classes=len(CLASSES), per_class=8, size=40, seed=seed)
    run = tmp / "runs" / f"{model}-run"
    (run / "plots").mkdir(parents=True)
    torch.manual_seed(seed)
    kwargs = {"name": model, "num_classes": len(CLASSES), "in_chans": 3, "img_size": img_size}
    net = create_model(**kwargs).eval()
    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    save_file(tensors, str(run / "model.safetensors"))
    card = {
        "format": "cnnlab-model/1",
        "architecture": model,
        "create_kwargs": kwargs,
        "classes": CLASSES,
        "input": {
            "img_size": img_size,
            "resize": resize,
            "crop_pct": img_size / resize,
            "channels": 3,
            "mean": list(net.mean),
            "std": list(net.std),
        },
        "mode": "scratch",
        "pretrained": False,
        "weights_source": None,
        "params": {"total": sum(p.numel() for p in net.parameters())},
        "macs": 0,
        "tta": tta,
        "versions": {"cnnlab": "0.1.0", "torch": torch.__version__},
    }
    (run / "model.json").write_text(json.dumps(card), encoding="utf-8")
    (run / "classes.json").write_text(json.dumps(CLASSES), encoding="utf-8")
    cfg = {"data": {"root": str(root), "img_size": img_size}, "model": {"name": model}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with (run / "split.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows(_split_rows(root))
    (run / "summary.json").write_text(json.dumps({"train_time_s": 1.5}), encoding="utf-8")
    (run / "data_report.json").write_text(json.dumps({"images": 24, "skipped": []}))
    return run


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    """A tiny_cnn run folder whose dataset (3 classes x 8 images) lies beside it."""
    return build_run(tmp_path)


def add_bad_files(folder: Path) -> list[Path]:
    """An empty PNG, a text file named .jpg and a truncated PNG inside ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    text = folder / "notes.jpg"
    text.write_text("not an image")
    good = next(p for p in sorted(folder.parent.rglob("*.png")) if p.stat().st_size > 100)
    cut = folder / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return [empty, text, cut]
