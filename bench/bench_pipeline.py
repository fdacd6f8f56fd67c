"""Input pipeline: images/s of a training epoch through cnnlab vs ImageFolder + PIL vs the limit.

~2000 photo-like 400x300 JPEGs. The same model, batch size and training step (fp32 SGD) is fed
by four pipelines, side by side:
- ``synthetic``: pre-made random tensors, the upper limit (no data work at all);
- ``cnnlab``: images decoded once by ``cnnlab.data.cache.build_cache`` (its one-off cost is
  reported apart), batches from ``make_loader``, flip+shift augmentation on the uint8 batch by
  ``build_train_transform``;
- ``imagefolder w0`` / ``w2``: torchvision ImageFolder decoding every JPEG with PIL each epoch
  (Resize + CenterCrop + RandomHorizontalFlip + ToTensor + Normalize), 0 and 2 workers.
Goals (issue 7): cnnlab >= 0.9x the synthetic limit; >= 2x the naive pipeline at 32 px.

Usage: python bench/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from common import OUT_DIR, make_photo_dataset, save_result, table
from peers.plain_torch import three_block_cnn

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def make_model(name: str, side: int) -> torch.nn.Module:
    """The model a setting trains: the 3-block CNN at 32 px or ResNet-18."""
    torch.manual_seed(0)
    if name == "resnet18":
        import timm

        return timm.create_model("resnet18", pretrained=False, num_classes=10)
    model = three_block_cnn(10)
    model(torch.zeros(1, 3, side, side))  # materialise the lazy layer
    return model


def time_epoch(model: torch.nn.Module, batches: Batches, prep: Callable[..., Any],
               max_batches: int | None) -> float:  # fmt: skip
    """Images/s of one pass of training steps over ``batches`` (loader time included)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    seen, start = 0, time.perf_counter()
    for x, y in itertools.islice(batches, max_batches):
        loss = torch.nn.functional.cross_entropy(model(prep(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def imagefolder_loader(root: Path, side: int, batch: int, workers: int) -> Batches:
    """The textbook pipeline: decode every JPEG with PIL each epoch."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.Resize(side), transforms.CenterCrop(side), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD),
    ])  # fmt: skip
    ds = datasets.ImageFolder(str(root), tf)
    return DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)


def cnnlab_batches(root: Path, side: int, batch: int) -> tuple[Batches, Callable[..., Any], float]:
    """cnnlab's loader over its decoded cache, its train transform, and the cache build time."""
    from cnnlab.data.cache import build_cache
    from cnnlab.data.loaders import make_loader
    from cnnlab.data.scan import scan_dataset
    from cnnlab.data.transforms import build_train_transform

    scan = scan_dataset(root, progress=False)
    paths = [r.path for r in scan.records]
    labels = [scan.classes.index(r.label) for r in scan.records]
    start = time.perf_counter()
    cache = build_cache(root, paths, side, 3, mode="memory", progress=False)
    build_s = time.perf_counter() - start
    keep = [labels[i] for i in cache.keep]
    loader = make_loader(cache.images, keep, batch, shuffle=True, seed=0)
    return loader, build_train_transform(side, MEAN, STD, preset="light"), build_s


def run_setting(root: Path, name: str, side: int, batch: int, max_batches: int | None,
                rounds: int = 2) -> dict[str, Any]:  # fmt: skip
    """All four pipelines for one model and input side, interleaved over ``rounds``.

    Each round times every pipeline once; the best round counts. Interleaving spreads any
    load from other processes over all pipelines instead of penalising whichever ran then.
    """
    out: dict[str, Any] = {}
    n = max_batches or 2000 // batch
    # Synthetic input drawn like real normalised pixels: uniform uint8 -> normalise.
    pixels = torch.randint(0, 256, (batch, 3, side, side)).float() / 255
    fake = [((pixels - 0.5) / 0.25, torch.randint(0, 10, (batch,)))] * n
    time_epoch(make_model(name, side), fake[:2], lambda x: x, None)  # warm up kernels
    feeds: dict[str, Callable[[], tuple[Batches, Callable[..., Any]]]] = {
        "synthetic": lambda: (fake, lambda x: x),
        "imagefolder_w0": lambda: (imagefolder_loader(root, side, batch, 0), lambda x: x),
        "imagefolder_w2": lambda: (imagefolder_loader(root, side, batch, 2), lambda x: x),
    }
    try:
        loader, augment, out["cnnlab_cache_build_s"] = cnnlab_batches(root, side, batch)
        feeds["cnnlab"] = lambda: (loader, augment)
    except Exception as exc:  # cnnlab still being written: report, keep the peers' figures
        out["cnnlab_error"] = f"{type(exc).__name__}: {exc}"
    for _ in range(rounds):
        for variant, feed in feeds.items():
            batches, to_input = feed()
            ips = time_epoch(make_model(name, side), batches, to_input, max_batches)
            out[variant] = max(out.get(variant, 0.0), ips)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches")
    args = parser.parse_args(argv)
    os.environ.setdefault("CNNLAB_CACHE", str(OUT_DIR / "cnnlab-cache"))
    root = make_photo_dataset()
    rounds = 1 if args.quick else 2
    settings = [  # model, side (px), batch, batches per timed epoch (None: the whole set)
        ("cnn", 32, 64, 8 if args.quick else None),
        ("resnet18", 128, 32, 3 if args.quick else 6),
    ]
    results, rows = {}, []
    for name, side, batch, max_batches in settings:
        key = f"{name}@{side}"
        results[key] = r = run_setting(root, name, side, batch, max_batches, rounds)
        limit, naive = r["synthetic"], r["imagefolder_w0"]
        for variant in ("synthetic", "cnnlab", "imagefolder_w0", "imagefolder_w2"):
            ips = r.get(variant)
            rows.append([key, variant, ips, ips / limit if ips else None,
                         ips / naive if ips else None])  # fmt: skip
        print(f"[pipeline] {key}: {r}", flush=True)
    print(table(["setting", "pipeline", "img/s", "x synthetic", "x imagefolder w0"], rows))
    for key, r in results.items():
        if "cnnlab" in r:
            print(f"{key}: cnnlab {r['cnnlab'] / r['synthetic']:.2f}x synthetic (goal >= 0.9), "
                  f"{r['cnnlab'] / r['imagefolder_w0']:.2f}x naive; one-off decode "
                  f"{r['cnnlab_cache_build_s']:.1f} s")  # fmt: skip
    print(f"[pipeline] saved {save_result('pipeline', {'results': results})}")
    return results


if __name__ == "__main__":
    main()
