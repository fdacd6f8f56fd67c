"""A generated dataset with known mislabelled files, for the label-issue tests and measurements.

Imported by name (``cleaning_helpers``), so the name is unique across test folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import make_class_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from common import write_mislabelled  # bench/common.py: the one writer of noisy folders

# Real-shaped: unicode and spaced class names, two image sizes.
CLASSES = ("gato", "perro ñ", "鳥 bird", "pez")
SIZES = (32, 40)  # px


def write_noisy_folder(
    root: Path, per_class: int = 25, moved_fraction: float = 0.05, seed: int = 0
) -> dict[str, str]:
    """``root/<class>/*.png`` of learnable images, ``moved_fraction`` of them in a wrong class.

    Returns:
        The moved files: path relative to ``root`` -> the class the image really shows.
    """
    return write_mislabelled(
        root, CLASSES, per_class, make_class_image, moved_fraction, SIZES, seed
    )


def precision_recall(flagged: set[str], moved: set[str]) -> tuple[float, float]:
    hits = len(flagged & moved)
    return hits / max(1, len(flagged)), hits / max(1, len(moved))
