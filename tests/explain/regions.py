"""A dataset whose class is decided by one object in a known box, for testing CAM meaning.

Each image has noise, two grey distractor squares (the same for every class, so they carry no
label) and one coloured object whose colour is the class. The object's position is random per
image and recorded, so a map that looks at the object must move with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(230, 40, 40), (40, 200, 40), (50, 90, 240)]  # class k's object colour
BOX = 10  # object and distractor side (px)
SIDE = 32  # image side (px): the default cnn's input size


def region_image(label: int, rng: np.random.Generator) -> tuple[Image.Image, tuple]:
    """One image of class ``label`` and its object's box ``(x0, y0, x1, y1)`` (exclusive).

    The object and the two distractors take three different cells of a 3x3 grid (10 px
    cells), each shifted by up to a pixel, so they never overlap.
    """
    arr = rng.integers(0, 70, size=(SIDE, SIDE, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    cells = rng.choice(9, size=3, replace=False)
    spots = [
        (1 + 10 * (c % 3) + int(rng.integers(0, 2)), 1 + 10 * (c // 3) + int(rng.integers(0, 2)))
        for c in cells
    ]
    (x, y), distractors = spots[0], spots[1:]
    draw.ellipse([x, y, x + BOX - 1, y + BOX - 1], fill=COLOURS[label])
    for dx, dy in distractors:
        grey = int(rng.integers(120, 220))
        draw.rectangle([dx + 1, dy + 1, dx + BOX - 2, dy + BOX - 2], fill=(grey, grey, grey))
    return img, (x, y, x + BOX, y + BOX)


def write_region_folder(root: Path, per_class: int = 60, seed: int = 0) -> dict:
    """ROOT/class_k/*.png; returns {relative path: box}."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for label in range(len(COLOURS)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img, box = region_image(label, rng)
            img.save(folder / f"{i:03d}.png")
            boxes[f"class_{label}/{i:03d}.png"] = box
    return boxes


def mass_inside(cam: np.ndarray, box: tuple) -> float:
    """Share of the map's total mass that lies inside ``box``."""
    x0, y0, x1, y1 = box
    total = float(cam.sum())
    return float(cam[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0
