"""Data pipeline benchmark: cnnlab's decoded cache vs torchvision ImageFolder, side by side.

Prints, from one run on the same generated folders:
- images/s of one training epoch (load + augment + normalise) through cnnlab's cache, loader
  and train transform, vs torchvision ImageFolder + PIL transforms with 0 and 2 workers;
- the one-off cost of building cnnlab's cache (the first epoch pays it);
- first vs cached scan time of a folder of many small images.

Usage: python bench/bench_data.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIDE = 64  # px: model input side used for both pipelines
BATCH = 128


def photo_like(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Smooth gradients, a few blurred shapes and sensor-like noise: JPEG-realistic content."""
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = rng.uniform(0, 255, 3) + rng.uniform(-120, 120, 3) * xx[..., None]
    base = base + rng.uniform(-80, 80, 3) * yy[..., None]
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        r = int(rng.integers(10, 80))
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tuple(rng.integers(0, 256, 3)))
    img = img.filter(ImageFilter.GaussianBlur(2))
    noisy = np.asarray(img, dtype=np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def make_photos(root: Path, n: int, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        photo_like(rng, 400, 300).save(folder / f"{i:05d}.jpg", quality=90)
    return root


def make_small(root: Path, n: int, classes: int = 10) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.png"
        )
    return root


def epoch_rate(loader, transform=None) -> float:
    start, seen = time.perf_counter(), 0
    for x, _ in loader:
        if transform is not None:
            x = transform(x)
        seen += len(x)
    return seen / (time.perf_counter() - start)


def bench_cnnlab(root: Path) -> tuple[float, float]:
    """(cache build seconds, epoch images/s through loader + train transform)."""
    from cnnlab.data.cache import build_cache
    from cnnlab.data.loaders import make_loader
    from cnnlab.data.scan import scan_dataset
    from cnnlab.data.transforms import build_train_transform

    scan = scan_dataset(root, progress=False)
    labels = [scan.classes.index(r.label) for r in scan.records]
    start = time.perf_counter()
    cache = build_cache(
        scan.root, [r.path for r in scan.records], SIDE, 3, mode="memory", progress=False
    )
    build = time.perf_counter() - start
    loader = make_loader(cache.images, labels, BATCH, shuffle=True, seed=0)
    tf = build_train_transform(SIDE, [0.5] * 3, [0.25] * 3, "light")
    return build, epoch_rate(loader, tf)


def bench_torchvision(root: Path, workers: int) -> float:
    import torch
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Resize(SIDE),
            transforms.CenterCrop(SIDE),
            transforms.RandomCrop(SIDE, padding=SIDE // 8, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.5] * 3, [0.25] * 3),
        ]
    )
    ds = datasets.ImageFolder(str(root), transform=tf)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=workers, generator=torch.Generator()
    )
    return epoch_rate(loader)


def bench_scan(root: Path) -> tuple[float, float]:
    from cnnlab.data.scan import scan_dataset

    start = time.perf_counter()
    scan_dataset(root, progress=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    scan_dataset(root, progress=False)
    return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 photos, 2000 small images")
    args = parser.parse_args()
    n_photos, n_small = (400, 2000) if args.quick else (2000, 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CNNLAB_CACHE"] = str(Path(tmp) / "cache")
        t0 = time.perf_counter()
        photos = make_photos(Path(tmp) / "photos", n_photos)
        small = make_small(Path(tmp) / "small", n_small)
        print(
            f"generated {n_photos} JPEGs 400x300 and {n_small} PNGs 32x32 "
            f"in {time.perf_counter() - t0:.0f} s; cores: {os.cpu_count()}"
        )
        build, ours = bench_cnnlab(photos)
        tv0 = bench_torchvision(photos, 0)
        tv2 = bench_torchvision(photos, 2)
        first, cached = bench_scan(small)
    rows = [
        ("cnnlab cached epoch (loader + light aug)", f"{ours:,.0f} img/s", "1.0x"),
        ("torchvision ImageFolder, 0 workers", f"{tv0:,.0f} img/s", f"{ours / tv0:.1f}x slower"),
        ("torchvision ImageFolder, 2 workers", f"{tv2:,.0f} img/s", f"{ours / tv2:.1f}x slower"),
        ("cnnlab cache build (once, parallel)", f"{n_photos / build:,.0f} img/s", f"{build:.1f} s"),
        (f"scan {n_small} files, first", f"{first:.2f} s", ""),
        (f"scan {n_small} files, cached", f"{cached:.2f} s", f"{first / cached:.0f}x faster"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>14}  {ratio}")
    print(
        f"epochs until the cache pays for itself vs torchvision 2 workers: "
        f"{build / max(n_photos / tv2 - n_photos / ours, 1e-9):.1f}"
    )


if __name__ == "__main__":
    main()
