"""Small demo datasets written as ordinary class folders, so every command can be tried offline.

``digits`` is scikit-learn's bundled 8x8 handwritten digits (1797 images, no download);
``shapes`` is drawn with Pillow: random size, position, rotation and colour on a noisy
background, so a CNN has to learn shape rather than colour or place.

Example:
    >>> root = write_digits("data/digits")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cnnlab.atomic import atomic_path

DIGITS_SIDE = 32  # px; 8x8 upscaled so models built for >= 32 px inputs work unchanged
SHAPES = ("circle", "square", "triangle", "star", "cross")


def write_digits(out_dir: str | os.PathLike[str]) -> Path:
    """Write scikit-learn's digits as greyscale PNGs ``OUT/<digit>/<n>.png``; idempotent."""
    from sklearn.datasets import load_digits

    out = Path(out_dir)
    digits = load_digits()
    names = [out / str(int(t)) / f"{i:04d}.png" for i, t in enumerate(digits.target)]
    if all(p.is_file() and p.stat().st_size > 0 for p in names):
        return out  # already complete
    for pixels, path in zip(digits.images, names, strict=True):
        if path.is_file() and path.stat().st_size > 0:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        grey = np.rint(np.asarray(pixels) / 16.0 * 255.0).astype(np.uint8)  # 0..16 -> 0..255
        img = Image.fromarray(grey).resize((DIGITS_SIDE, DIGITS_SIDE), Image.Resampling.BILINEAR)
        _save_atomic(img, path)
    return out


def _save_atomic(img: Image.Image, path: Path) -> None:
    """Write then rename, so an interrupted run never leaves a half-written PNG behind."""
    with atomic_path(path, durable=False) as tmp:
        img.save(tmp, format="PNG")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [
            (math.cos(a), math.sin(a)) for a in (math.pi / 4 + k * math.pi / 2 for k in range(4))
        ]
    elif kind == "triangle":
        pts = [
            (math.cos(a), math.sin(a))
            for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))
        ]
    elif kind == "star":
        pts = [
            (
                (1.0 if k % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
                (1.0 if k % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5),
            )
            for k in range(10)
        ]
    elif kind == "cross":
        w = 0.33
        pts = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    else:
        raise ValueError(f"unknown shape {kind!r}; choose from {', '.join(SHAPES)}")
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def draw_shape(kind: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One RGB picture of ``kind`` on a noisy background."""
    base = rng.integers(0, 256, size=3)
    noise = rng.normal(0, 18, size=(size, size, 3))
    bg = np.clip(base * 0.5 + 40 + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(bg)
    draw = ImageDraw.Draw(img)
    r = size * rng.uniform(0.18, 0.38)
    cx, cy = rng.uniform(r, size - r, size=2)
    colour = tuple(int(v) for v in rng.integers(40, 256, size=3))
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, rng.uniform(0, 2 * math.pi)), fill=colour)
    return img


def write_shapes(
    out_dir: str | os.PathLike[str],
    classes: tuple[str, ...] = SHAPES,
    per_class: int = 60,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write ``OUT/<shape>/<n>.png``; the same seed writes the same pictures."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    for kind in classes:
        folder = out / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = draw_shape(kind, rng, size)  # drawn even if present: keeps the RNG in step
            path = folder / f"{i:04d}.png"
            if not path.is_file():
                _save_atomic(img, path)
    return out
