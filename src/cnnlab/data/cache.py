"""Decode every image once into a uint8 tensor ``(N, C, side, side)``, in memory or on disk.

Decoding a JPEG costs far more than a training step of a small CNN on CPU, so epochs read
pre-resized uint8 pixels instead of files. ``memory`` keeps the tensor in RAM; ``disk`` writes
an ``.npy`` memmap under ``cnnlab.paths.cache_dir("images")`` that the next run with the same
files and geometry reuses; ``off`` decodes lazily in DataLoader workers; ``auto`` is ``disk``
(memory only when the cache folder cannot be written), because studies and searches train on
the same images many times and should decode them once. Files are never pickled.

Example:
    >>> cache = build_cache("data/flowers", split.paths(), side=64, channels=3)  # doctest: +SKIP
    >>> cache.images.shape, len(cache.failed)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.console import info, warn
from cnnlab.data.image import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    decode_many,
    load_image,
    to_array,
)
from cnnlab.data.parallel import map_chunks
from cnnlab.data.scan import Skipped
from cnnlab.errors import DataError
from cnnlab.paths import cache_dir

CACHE_FORMAT = "cnnlab-images/1"


@dataclass
class LazyImages:
    """``cache="off"``: decode on demand (in DataLoader workers), same pixels as the cache."""

    root: str
    paths: list[str]
    side: int
    channels: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> torch.Tensor:
        """uint8 ``(C, side, side)``; raises ImageLoadError naming the file."""
        img = load_image(
            Path(self.root, self.paths[i]),
            self.channels,
            self.max_pixels,
            self.min_side,
            draft_side=self.side,
        )
        return torch.from_numpy(to_array(img, self.side).transpose(2, 0, 1).copy())


@dataclass
class ImageCache:
    """Decoded images, aligned with ``[paths[i] for i in keep]``."""

    images: torch.Tensor | LazyImages
    keep: list[int]
    failed: list[Skipped] = field(default_factory=list)
    mode: str = "memory"
    path: Path | None = None  # the .npy file in disk mode


def _fingerprint(
    root: Path, paths: list[str], side: int, channels: int, max_pixels: int, min_side: int
) -> tuple[str, list[str]]:
    """A key over every file's (path, size, mtime) and the geometry; lists missing files."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{root}|{side}|{channels}|{max_pixels}|{min_side}".encode())
    missing = []
    for rel in paths:
        try:
            st = os.stat(root / rel)
            h.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        except OSError:
            missing.append(rel)
            h.update(f"\0{rel}\0missing".encode())
    return h.hexdigest()[:32], missing


def build_cache(
    root: str | os.PathLike[str],
    paths: list[str],
    side: int,
    channels: int,
    mode: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    progress: bool = True,
) -> ImageCache:
    """Decode ``paths`` (relative to ``root``) once to uint8 ``(N, C, side, side)``.

    Files deleted or broken since the scan are left out with a warning (``.failed``);
    ``.keep`` says which of ``paths`` the rows of ``.images`` belong to.
    """
    root = Path(root).resolve()
    if mode not in {"auto", "memory", "disk", "off"}:
        raise DataError(f"data.cache={mode!r} is not a cache mode; use auto, memory, disk or off")
    if mode == "off":
        lazy = LazyImages(str(root), list(paths), side, channels, max_pixels, min_side)
        return ImageCache(lazy, list(range(len(paths))), mode="off")
    args = (str(root), side, channels, max_pixels, min_side)
    if mode == "auto":
        # The disk cache is decoded once and reused by every later run on the same files (a
        # study or a tuning search runs the same images dozens of times); memory only when the
        # cache folder cannot be written.
        try:
            return _disk_cache(root, paths, args, progress)
        except OSError as exc:
            warn(f"image cache not writable ({exc}); decoding into memory for this run")
            mode = "memory"
    if mode == "memory":
        images = torch.empty((len(paths), channels, side, side), dtype=torch.uint8)
        cache = _fill(images.numpy(), paths, args, progress)
        cache.images = images if len(cache.keep) == len(paths) else images[cache.keep]
        _warn_failed(cache.failed)
        return cache
    return _disk_cache(root, paths, args, progress)


def _fill(out: np.ndarray, paths: list[str], args: tuple[Any, ...], progress: bool) -> ImageCache:
    """Decode into ``out`` row by row as chunks finish; compact rows of failed files away."""
    reasons: dict[int, str] = {}

    def sink(start: int, results: list[tuple[np.ndarray | None, str]]) -> None:
        for j, (arr, reason) in enumerate(results):
            if arr is None:
                reasons[start + j] = reason
            else:
                out[start + j] = arr.transpose(2, 0, 1)

    map_chunks(
        decode_many, paths, *args, description="decoding images", progress=progress, sink=sink
    )
    keep = [i for i in range(len(paths)) if i not in reasons]
    failed = [Skipped(paths[i], reasons[i]) for i in sorted(reasons)]
    return ImageCache(torch.empty(0), keep, failed)


def _warn_failed(failed: list[Skipped]) -> None:
    for s in failed[:10]:
        warn(f"{s.path}: {s.reason} since the scan; left out")
    if len(failed) > 10:
        warn(f"... and {len(failed) - 10} more files left out")


def _disk_cache(root: Path, paths: list[str], args: tuple[Any, ...], progress: bool) -> ImageCache:
    _, side, channels, max_pixels, min_side = args
    key, _ = _fingerprint(root, paths, side, channels, max_pixels, min_side)
    folder = cache_dir("images")
    npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
    cache = _load_disk(npy, meta)
    if cache is None:
        tmp = folder / f".{key}.{os.getpid()}.npy"
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(paths), channels, side, side)
        )
        cache = _fill(out, paths, args, progress)
        for row, i in enumerate(cache.keep):  # compact in place; row <= i always
            if row != i:
                out[row] = out[i]
        out.flush()
        del out
        os.replace(tmp, npy)
        info_doc = {
            "format": CACHE_FORMAT,
            "count": len(cache.keep),
            "keep": cache.keep,
            "failed": [[s.path, s.reason] for s in cache.failed],
        }
        meta.write_text(json.dumps(info_doc), encoding="utf-8")  # written last: marks complete
        cache = _load_disk(npy, meta)
        if cache is None:
            raise DataError(f"{npy}: the image cache could not be read back; check free disk")
    else:
        info(f"reusing decoded image cache {npy.name}")
    _warn_failed(cache.failed)
    return cache


def _load_disk(npy: Path, meta: Path) -> ImageCache | None:
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
        if doc.get("format") != CACHE_FORMAT:
            return None
        arr = np.load(npy, mmap_mode="c", allow_pickle=False)  # copy-on-write: never mutates
        images = torch.from_numpy(arr)[: doc["count"]]
        failed = [Skipped(p, r) for p, r in doc["failed"]]
        return ImageCache(images, list(doc["keep"]), failed, mode="disk", path=npy)
    except (OSError, ValueError, KeyError, TypeError):
        return None
