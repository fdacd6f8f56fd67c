"""Decode every image once into a uint8 tensor ``(N, C, side, side)``, in memory or on disk.

Decoding a JPEG costs far more than a training step of a small CNN on CPU, so epochs read
pre-resized uint8 pixels instead of files. ``memory`` keeps the tensor in RAM; ``disk`` writes
an ``.npy`` memmap under ``cnnlab.paths.cache_dir("images")`` that the next run with the same
files and geometry reuses; ``off`` decodes lazily in DataLoader workers; ``auto`` is ``disk``
(memory only when the cache folder cannot be written), because studies and searches train on
the same images many times and should decode them once. Files are never pickled.

A disk entry is keyed on every file's content hash (the scan's ``Record.sha1``, passed as
``hashes``), not on size and mtime: an image replaced in place by another of the same size,
its mtime restored (``cp -p``), is decoded again. Without hashes the key falls back to
(size, mtime, ctime), which a rewrite also changes.

Example:
    >>> cache = build_cache("data/flowers", split.paths(), side=64, channels=3)  # doctest: +SKIP
    >>> cache.images.shape, len(cache.failed)  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.atomic import atomic_path, atomic_write_text
from cnnlab.cachedir import CacheSpaceError, make_room, touch
from cnnlab.cachelock import entry_lock, writer_lock
from cnnlab.data.image import (
    DEFAULT_MAX_BYTES,
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

CACHE_FORMAT = "cnnlab-images/2"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file-size limit


@dataclass
class LazyImages:
    """``cache="off"``: decode on demand (in DataLoader workers), same pixels as the cache."""

    root: str
    paths: list[str]
    side: int
    channels: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    max_bytes: int = DEFAULT_MAX_BYTES

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
            max_bytes=self.max_bytes,
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
    reused: bool = False  # a disk entry from an earlier run
    warnings: list[str] = field(default_factory=list)  # for the caller to print


def _fingerprint(
    root: Path, paths: list[str], hashes: list[str] | None, geometry: tuple[Any, ...]
) -> str:
    """A key over every file's path and content hash (or its stat) and the geometry."""
    h = hashlib.sha256(f"{CACHE_FORMAT}|{root}|{'|'.join(map(str, geometry))}".encode())
    for i, rel in enumerate(paths):
        if hashes is not None:
            h.update(f"\0{rel}\0{hashes[i]}".encode())
            continue
        try:
            st = os.stat(root / rel)
            h.update(f"\0{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}".encode())
        except OSError:
            h.update(f"\0{rel}\0missing".encode())
    return h.hexdigest()[:32]


def build_cache(
    root: str | os.PathLike[str],
    paths: list[str],
    side: int,
    channels: int,
    mode: str = "auto",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    progress: bool = True,
    hashes: list[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ImageCache:
    """Decode ``paths`` (relative to ``root``) once to uint8 ``(N, C, side, side)``.

    Files deleted or broken since the scan are left out (``.failed``, with a line each in
    ``.warnings``); ``.keep`` says which of ``paths`` the rows of ``.images`` belong to.
    ``hashes`` are the files' content hashes from the scan, aligned with ``paths``; they key
    the disk cache.
    """
    root = Path(root).resolve()
    if mode not in {"auto", "memory", "disk", "off"}:
        raise DataError(f"data.cache={mode!r} is not a cache mode; use auto, memory, disk or off")
    if mode == "off":
        lazy = LazyImages(str(root), list(paths), side, channels, max_pixels, min_side, max_bytes)
        return ImageCache(lazy, list(range(len(paths))), mode="off")
    args = (str(root), side, channels, max_pixels, min_side, max_bytes)
    if mode == "auto":
        # The disk cache is decoded once and reused by every later run on the same files (a
        # study or a tuning search runs the same images dozens of times); memory only when the
        # cache folder cannot be written.
        try:
            return _disk_cache(root, paths, hashes, args, progress)
        except OSError as exc:
            cache = _memory_cache(paths, args, progress)
            cache.warnings.insert(0, f"image cache not writable ({exc}); decoded into memory")
            return cache
    if mode == "memory":
        return _memory_cache(paths, args, progress)
    return _disk_cache(root, paths, hashes, args, progress)


def _memory_cache(paths: list[str], args: tuple[Any, ...], progress: bool) -> ImageCache:
    side, channels = args[1], args[2]
    images = torch.empty((len(paths), channels, side, side), dtype=torch.uint8)
    cache = _fill(images.numpy(), paths, args, progress)
    cache.images = images if len(cache.keep) == len(paths) else images[cache.keep]
    cache.warnings = failed_lines(cache.failed)
    return cache


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


def failed_lines(failed: list[Skipped], since: str = "since the scan") -> list[str]:
    """Warning lines for files left out at load time: the first ten by path, then a count."""
    lines = [f"{s.path}: {s.reason} {since}; left out" for s in failed[:10]]
    if len(failed) > 10:
        lines.append(f"... and {len(failed) - 10} more files left out")
    return lines


def _disk_cache(
    root: Path, paths: list[str], hashes: list[str] | None, args: tuple[Any, ...], progress: bool
) -> ImageCache:
    key = _fingerprint(root, paths, hashes, args[1:])
    folder = cache_dir("images")
    npy, meta = folder / f"{key}.npy", folder / f"{key}.json"
    # the ranks of a node (or two runs on the same files) decode once, then share it
    with entry_lock(f"images-{key}", f"the decoded image cache of {root}"):
        cache = _load_disk(npy, meta)
        if cache is None:
            cache = _write_disk(npy, meta, paths, args, progress)
        else:
            cache.reused = True
            touch(meta)  # least-recently-used eviction spares what is in use
    cache.warnings = failed_lines(cache.failed)
    return cache


def _write_disk(
    npy: Path, meta: Path, paths: list[str], args: tuple[Any, ...], progress: bool
) -> ImageCache:
    """Decode into a new memory-mapped entry; the JSON written last marks it complete."""
    side, channels = args[1], args[2]
    shape = (len(paths), channels, side, side)
    make_room(int(np.prod(shape)) + 4096, "the decoded image cache")
    with atomic_path(npy, durable=False) as tmp, writer_lock(tmp):
        out = _allocate(tmp, shape)
        cache = _fill(out, paths, args, progress)
        for row, i in enumerate(cache.keep):  # compact in place; row <= i always
            if row != i:
                out[row] = out[i]
        out.flush()
        del out
    doc = {
        "format": CACHE_FORMAT,
        "count": len(cache.keep),
        "keep": cache.keep,
        "failed": [[s.path, s.reason] for s in cache.failed],
    }
    atomic_write_text(meta, json.dumps(doc), durable=False)  # written last: marks complete
    cache = _load_disk(npy, meta)
    if cache is None:
        raise DataError(f"{npy}: the image cache could not be read back; check free disk")
    return cache


def _allocate(tmp: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The memory map to decode into, its blocks allocated now: a full disk fails here with a
    clear error, not later with SIGBUS when a page of a sparse file is first written."""
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise
            # a file system without fallocate: the free-space check before still ran
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno not in _NO_SPACE:
            raise
        raise CacheSpaceError(
            f"{tmp.parent}: no room for the decoded image cache "
            f"({int(np.prod(shape)) / 1e9:.2f} GB: {exc.strerror}); free disk space, set "
            "CNNLAB_CACHE to a larger disk, or use data.cache=off"
        ) from exc
    return out


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
