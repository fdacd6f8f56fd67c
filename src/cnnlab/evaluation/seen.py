"""Whether ``cnnlab eval`` scores images the run already used: its val or train split.

A run's val images chose its best epoch (``train.monitor``) and whether flip test-time
augmentation is kept, and its train images are the ones it learned: both score higher than new
images would. ``cnnlab eval RUN --split val``, or ``--data`` pointing at the run's own dataset,
gave such numbers with no word of it (explore I, finding 10). The evaluated files are matched to
``split.csv`` by their place on disk (the dataset root joined with the relative path), so
``--data`` naming the dataset folder, a split folder inside it, or a manifest over it is caught
alike; a copy of the images elsewhere is not (its bytes are not compared).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any

from cnnlab.runs import SPLIT

_WHY = {
    "val": "validation images, which chose its best epoch (and test-time augmentation)",
    "train": "training images, which it learned from",
}


def _used(run: Any) -> dict[str, str]:
    """``{absolute path: "train" | "val"}`` of the run's split.csv (empty when unknown)."""
    from cnnlab.paths import dataset_folder

    data_root = (run.config.get("data") or {}).get("root")
    split_file = run.path / SPLIT
    if not data_root or not split_file.is_file():
        return {}
    root = dataset_folder(data_root)
    with split_file.open(newline="", encoding="utf-8") as fh:
        return {
            os.path.normpath(root / row["path"]): row["split"]
            for row in csv.DictReader(fh)
            if row.get("split") in _WHY
        }


def seen_caution(run: Any, root: Path, samples: list[tuple[str, str]]) -> str:
    """One sentence when some of ``samples`` (paths relative to ``root``) are the run's own val
    or train images, else ``""``.

    Example:
        >>> seen_caution(run, Path("data/five"), [("val/a/1.png", "a")])  # doctest: +SKIP
        "These 1 images are the run's own validation images, ..."
    """
    used = _used(run)
    if not used or not samples:
        return ""
    here = Path(root).expanduser().resolve()
    counts = Counter(used.get(os.path.normpath(here / rel)) for rel, _ in samples)
    parts = []
    for split in ("val", "train"):
        k = counts.get(split, 0)
        if k:
            which = "All" if k == len(samples) else f"{k} of the"
            parts.append(f"{which} {len(samples)} images evaluated are the run's own {_WHY[split]}")
    if not parts:
        return ""
    return ("; ".join(parts) + ": expect them to score higher than new images would. The run's "
            "test split (cnnlab eval RUN) is the figure to report.")  # fmt: skip
