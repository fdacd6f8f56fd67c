"""A generated dataset with known mislabelled files, for the label-issue tests and measurements.

Imported by name (``cleaning_helpers``), so the name is unique across test folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.conftest import make_class_image

# Real-shaped: unicode and spaced class names, two image sizes.
CLASSES = ("gato", "perro ñ", "鳥 bird", "pez")
SIZES = (32, 40)  # px


def write_noisy_folder(
    root: Path, per_class: int = 25, moved_fraction: float = 0.05, seed: int = 0
) -> dict[str, str]:
    """Write ``root/<class>/*.png`` with ``moved_fraction`` of the images in a wrong class.

    Returns:
        The moved files: path relative to ``root`` -> the class the image really shows.
    """
    rng = np.random.default_rng(seed)
    total = per_class * len(CLASSES)
    moved_ids = set(rng.choice(total, size=round(total * moved_fraction), replace=False).tolist())
    moved: dict[str, str] = {}
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            img = make_class_image(c, rng, SIZES[i % 2])
            k = c * per_class + i
            folder = name
            if k in moved_ids:  # a wrong class, never the true one
                folder = CLASSES[(c + 1 + int(rng.integers(0, len(CLASSES) - 1))) % len(CLASSES)]
            (root / folder).mkdir(parents=True, exist_ok=True)
            rel = f"{folder}/{c}_{i:03d}.png"
            img.save(root / rel)
            if folder != name:
                moved[rel] = name
    return moved


def precision_recall(flagged: set[str], moved: set[str]) -> tuple[float, float]:
    hits = len(flagged & moved)
    return hits / max(1, len(flagged)), hits / max(1, len(moved))
