"""Evaluation that streams: decode and classify a folder a chunk at a time.

Memory holds one chunk of pixels and the probabilities, never the whole folder decoded; the
report's gallery of worst mistakes decodes again only the images it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.console import track
from cnnlab.errors import ImageLoadError


class FileImages:
    """The evaluated images, decoded again only when the report shows one (worst mistakes)."""

    def __init__(self, predictor: Any, root: Path, paths: Sequence[str]) -> None:
        self.predictor, self.root, self.paths = predictor, root, list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        array = self.predictor.load(self.root / self.paths[i])
        return torch.from_numpy(array.transpose(2, 0, 1).copy())


def predict_stream(
    predictor: Any,
    root: Path,
    samples: list[tuple[str, str]],
    classes: Sequence[str],
    tta: bool,
    batch_size: int = 256,
) -> tuple[torch.Tensor, list[int], list[str], list[dict[str, str]]]:
    """Decode and classify ``batch_size`` files at a time: memory holds one batch of pixels
    and the probabilities, never the whole folder decoded."""
    index = {c: i for i, c in enumerate(classes)}
    labels, paths, skipped, arrays, parts = [], [], [], [], []

    def flush() -> None:
        if arrays:
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
            parts.append(predictor.predict_arrays(x, tta=tta))
            arrays.clear()

    for rel, label in track(samples, "evaluate", total=len(samples)):
        try:
            arrays.append(predictor.load(root / rel))
        except ImageLoadError as exc:
            skipped.append({"path": rel, "reason": exc.reason})
            continue
        labels.append(index[label])
        paths.append(rel)
        if len(arrays) == batch_size:
            flush()
    flush()
    probs = torch.cat(parts) if parts else torch.zeros(0, len(classes))
    return probs, labels, paths, skipped
