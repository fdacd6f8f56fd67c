"""Peer (b): fastai's from-scratch recipe, timed as its own process.

``vision_learner(resnet18, pretrained=False)`` + ``fit_one_cycle(10)`` with fastai's defaults
(batch 64, its default lr). The held-out test split is fastai's validation set, so the
accuracy it reports after the last epoch is test accuracy; no early stopping or model
selection uses it. Prints one JSON line.

Usage: python bench/peers/fastai_run.py DATA_ROOT [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    start = time.perf_counter()
    from fastai.vision.all import (
        ImageDataLoaders,
        accuracy,
        resnet18,
        set_seed,
        vision_learner,
    )

    set_seed(0)
    dls = ImageDataLoaders.from_folder(args.data, train="train", valid="test", device="cpu")
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(args.epochs)
        _, acc = learn.validate()
    seconds = time.perf_counter() - start
    print(json.dumps({"peer": "fastai", "test_acc": float(acc), "train_s": seconds}))


if __name__ == "__main__":
    main()
