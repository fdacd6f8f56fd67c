"""Makers of every kind of bad or unusual image file the data package must survive."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(size: int = 64, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def png_bytes(size: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 30000) -> bytes:
    """A tiny PNG whose header claims side x side pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


BAD_FILES = {
    # name: (bytes maker, expected reason)
    "truncated.jpg": (lambda: jpeg_bytes()[: len(jpeg_bytes()) // 2], "truncated"),
    "no_eoi.jpg": (lambda: jpeg_bytes()[:-2], "truncated"),
    "no_tail.png": (lambda: png_bytes()[:-12], "truncated"),
    "empty.png": (lambda: b"", "empty"),
    "text.png": (lambda: b"this is not a picture\n" * 4, "not an image"),
    "random.jpg": (lambda: np.random.default_rng(1).bytes(2048), "not an image"),
    "bomb.png": (bomb_png, "too large"),
}


def bad_files() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, expected skip reason)."""
    return {name: (make(), reason) for name, (make, reason) in BAD_FILES.items()}


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
