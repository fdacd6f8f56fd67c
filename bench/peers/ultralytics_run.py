"""Peer (c): Ultralytics' classifier from its YAML (no pretrained weights), timed whole.

``YOLO("yolov8n-cls.yaml").train(...)`` for 10 epochs at the images' own 32 px, fully
offline: no plots (they fetch a font), no AMP check (it fetches weights), no hub. The
held-out test split is what Ultralytics validates on (its folder has no val/), so the final
top-1 it reports is test accuracy. Prints one JSON line.

Usage: python bench/peers/ultralytics_run.py DATA_ROOT OUT_DIR [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    # Ultralytics writes *.cache files beside the class folders: give it its own copy so the
    # shared benchmark dataset stays untouched for the other contenders (copy not timed).
    data = os.path.join(args.out, "data")
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(args.data, data, ignore=shutil.ignore_patterns("*.cache"))
    start = time.perf_counter()
    os.environ.setdefault("YOLO_OFFLINE", "1")  # must be set before the import reads it
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(args.out, "config"))
    from ultralytics import YOLO, settings

    off = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
    settings.update({k: False for k in off if k in settings})
    model = YOLO("yolov8n-cls.yaml")
    metrics = model.train(
        data=data, epochs=args.epochs, imgsz=32, device="cpu", plots=False, amp=False,
        project=args.out, name="yolo", exist_ok=True, verbose=False, seed=0, workers=2,
    )  # fmt: skip
    acc = float(metrics.top1) if metrics is not None else float("nan")
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": "ultralytics", "test_acc": acc, "train_s": seconds}))


if __name__ == "__main__":
    main()
