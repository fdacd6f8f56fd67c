"""The one image loader: training, predict, the app and the audit all decode through here.

One loader means one set of rules (EXIF orientation, transparency on white, 16-bit scaling,
first frame) so a picture gives the same pixels in every part of cnnlab. Every failure becomes
:class:`~cnnlab.errors.ImageLoadError` with a short fixed reason, so callers can skip the file
and report it instead of crashing.

This module imports no torch: it runs inside scan and cache worker processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from cnnlab.errors import ImageLoadError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold
DEFAULT_MIN_SIDE = 4  # px; smaller images carry no learnable content and are skipped
DEFAULT_MAX_BYTES = 256 * 2**20  # bytes; larger files are skipped before being read
# The only Pillow decoders cnnlab lets open a file: the formats of walk.IMAGE_EXTS (Pillow's
# JPEG reader also returns camera MPO files). All are decoded
# by Pillow itself. Anything else, EPS above all (Pillow hands it to Ghostscript, an
# interpreter), is "not an image" whatever the file's extension says.
FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")
WHITE = (255, 255, 255)
_ALPHA_MODES = {"LA", "La", "RGBA", "RGBa", "PA"}


def _read_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Read the whole file once; the bytes feed both the decode and the verify pass.

    The size is checked on the open file before reading, so a huge file (or a device) never
    lands in memory; reading at most ``max_bytes + 1`` catches a file that grew meanwhile.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise ImageLoadError(path, "too large", f"{size} bytes > {max_bytes}")
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageLoadError(path, "missing") from None
    except (PermissionError, IsADirectoryError) as exc:
        raise ImageLoadError(path, "unreadable", type(exc).__name__) from None
    except OSError as exc:
        raise ImageLoadError(path, "unreadable", str(exc)) from None
    if not data:
        raise ImageLoadError(path, "empty")
    if len(data) > max_bytes:
        raise ImageLoadError(path, "too large", f"more than {max_bytes} bytes")
    return data


def _open(path: Path, data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header only and refuse bombs before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # We apply our own limit below; Pillow's warning would only duplicate it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, "too large", str(exc)) from None
    except Exception as exc:  # Pillow raises many types for garbage; all mean the same
        raise ImageLoadError(path, "not an image", type(exc).__name__) from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageLoadError(path, "too large", f"{width}x{height} > {max_pixels} pixels")
    return img


def _verify(path: Path, data: bytes) -> None:
    """Pillow's verify() catches a PNG cut after its pixel data, which a decode accepts."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.open(io.BytesIO(data), formats=FORMATS).verify()
    except Exception as exc:
        raise ImageLoadError(path, "truncated", str(exc)) from None


def _decode(path: Path, img: Image.Image, draft_side: int | None) -> Image.Image:
    """Fully decode the first frame; a JPEG is decoded at reduced scale when that suffices."""
    try:
        if draft_side and img.format == "JPEG":
            img.draft(None, (draft_side, draft_side))  # keeps both sides >= draft_side
        img.seek(0)
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(path, "too large", str(exc)) from None
    except Exception as exc:  # OSError "truncated", SyntaxError, ValueError from decoders
        raise ImageLoadError(path, "truncated", str(exc)) from None
    with contextlib.suppress(Exception):  # a broken EXIF block is not worth losing the picture
        img = ImageOps.exif_transpose(img) or img
    return img


def _scale_high_depth(img: Image.Image) -> Image.Image:
    """16/32-bit integer and float greyscale -> 8-bit, scaled to the full range, not clipped."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        out = arr.astype(np.float32) / 257.0
    elif img.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        unit = lo >= 0.0 and hi <= 1.0
        out = arr * 255.0 if unit else (arr - lo) / max(hi - lo, 1e-12) * 255.0
    else:  # "I": 32-bit ints; usually 16-bit data that Pillow widened
        hi = int(arr.max(initial=0))
        lo = int(arr.min(initial=0))
        if lo >= 0 and hi <= 255:
            out = arr.astype(np.float32)
        elif lo >= 0 and hi <= 65535:
            out = arr.astype(np.float32) / 257.0
        else:
            out = (arr.astype(np.float64) - lo) / max(hi - lo, 1) * 255.0
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(out)), 0, 255).astype(np.uint8), "L")


def _flatten(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB or L, compositing transparency on white."""
    if img.mode == "1":
        return img.convert("L")
    if img.mode.startswith("I") or img.mode == "F":
        return _scale_high_depth(img)
    has_alpha = img.mode in _ALPHA_MODES or (
        "transparency" in img.info and img.mode in {"P", "L", "RGB"}
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        flat = Image.alpha_composite(background, rgba).convert("RGB")
        return flat.convert("L") if img.mode in {"LA", "La", "L"} else flat
    if img.mode in {"RGB", "L"}:
        return img
    return img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _to_channels(img: Image.Image, channels: int) -> Image.Image:
    flat = _flatten(img)
    want = "L" if channels == 1 else "RGB"
    return flat if flat.mode == want else flat.convert(want)


def load_image(
    path: str | os.PathLike[str],
    channels: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    draft_side: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """Decode one image file fully, checked, as RGB (channels=3) or L (channels=1).

    Args:
        path: image file; the format is read from the content, not the extension.
        channels: 3 for RGB, 1 for greyscale.
        max_pixels: images whose header claims more pixels are refused without decoding.
        min_side: images with a shorter side below this are refused ("too small").
        draft_side: for JPEGs, decode at the smallest power-of-two scale that keeps both
            sides at least this many pixels (much faster for photos).
        max_bytes: larger files are refused ("too large") before they are read.

    Raises:
        ImageLoadError: reason is one of missing, empty, not an image, truncated, too large,
            too small, unreadable.

    Example:
        >>> img = load_image("cat.jpg", channels=3)  # doctest: +SKIP
    """
    return _to_channels(load_raw(path, max_pixels, min_side, draft_side, max_bytes), channels)


def load_raw(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    draft_side: int | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image:
    """All of :func:`load_image`'s checks, but the image keeps its own mode (for stats)."""
    path = Path(path)
    return _checked(path, _read_bytes(path, max_bytes), max_pixels, min_side, draft_side)


def load_image_bytes(
    data: bytes,
    name: str,
    channels: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    draft_side: int | None = None,
) -> Image.Image:
    """:func:`load_image` for bytes that never were a file (an upload to the web app).

    Args:
        data: the file's content.
        name: what errors call it (the uploader's own file name, never a server path).

    Raises:
        ImageLoadError: as :func:`load_image` (a format outside :data:`FORMATS`, read from
            the content, is "not an image").
    """
    if not data:
        raise ImageLoadError(name, "empty")
    img = _checked(Path(name), data, max_pixels, min_side, draft_side)
    return _to_channels(img, channels)


def _checked(
    path: Path, data: bytes, max_pixels: int, min_side: int, draft_side: int | None
) -> Image.Image:
    with warnings.catch_warnings():
        # Pillow warns about odd metadata (corrupt EXIF...); the pixels are what we judge.
        warnings.simplefilter("ignore")
        img = _open(path, data, max_pixels)
        if min(img.size) < min_side:
            size = f"{img.size[0]}x{img.size[1]} < {min_side} px"
            raise ImageLoadError(path, "too small", size)
        img = _decode(path, img, draft_side)
        if img.format != "JPEG":  # verify() is a no-op for JPEG; the full decode covered it
            _verify(path, data)
    return img


def inspect_files(
    paths: list[str], root: str, max_pixels: int, min_side: int, max_bytes: int
) -> list[dict[str, Any]]:
    """Scan worker: fully decode each file; return its stats or the reason it failed.

    The byte hash comes free here (the file is already in memory) and lets the audit find
    exact duplicates without reading the dataset again.
    """
    out: list[dict[str, Any]] = []
    for rel in paths:
        path = Path(root, rel)
        try:
            data = _read_bytes(path, max_bytes)
            img = _checked(path, data, max_pixels, min_side, None)
            _to_channels(img, 3)  # proves the mode converts, as training will need
        except ImageLoadError as exc:
            out.append({"ok": False, "reason": exc.reason})
            continue
        out.append(
            {
                "ok": True,
                "width": img.size[0],
                "height": img.size[1],
                "mode": img.mode,
                "format": img.format or "",
                "sha1": hashlib.sha1(data).hexdigest(),
            }
        )
    return out


def to_array(img: Image.Image, side: int) -> np.ndarray:
    """Resize the centred largest square to ``side`` in one pass (antialiased bilinear).

    One ``resize(box=...)``, not a crop then a resize: the filter reads the pixels just outside
    the square, as export.json tells a reimplementation to do.

    Returns:
        uint8 array ``(side, side, C)`` with C = 3 for RGB, 1 for L.
    """
    width, height = img.size
    short = min(width, height)
    left, top = (width - short) / 2, (height - short) / 2
    box = (left, top, left + short, top + short)
    # resize(box=...) crops and resizes in one pass; Pillow's bilinear filter widens its
    # support when shrinking, which is the antialiasing we want.
    out = img.resize((side, side), Image.Resampling.BILINEAR, box=box)
    arr = np.asarray(out, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def pil_from_any(x: Any, channels: int = 3) -> Image.Image:
    """A PIL image or NumPy array (HW/HWC, uint8 or float 0..1) -> RGB or L, same mode rules.

    A PIL image is turned upright by its EXIF orientation, as a file is (an ``Image.open``
    of a phone photo gives the same pixels as its path). An array has no mode: 4 channels
    are RGBA, 2-D values are grey levels (convert a CMYK or palette image with Pillow first,
    or pass the image itself).

    Raises:
        ImageLoadError: the object is not something that can be read as an image.
    """
    if isinstance(x, Image.Image):
        with contextlib.suppress(Exception):  # a broken EXIF block: keep the picture as is
            x = ImageOps.exif_transpose(x) or x
        return _to_channels(x, channels)
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageLoadError("<array>", "not an image", f"shape {arr.shape}, want HW or HWC")
    if min(arr.shape[:2]) < 1:
        raise ImageLoadError("<array>", "too small", f"shape {arr.shape}")
    if arr.dtype == np.uint16:
        arr = np.rint(arr / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    # Pillow infers L, RGB or RGBA from the shape of a uint8 array.
    return _to_channels(Image.fromarray(np.ascontiguousarray(arr)), channels)


def decode_many(
    paths: list[str],
    root: str,
    side: int,
    channels: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[tuple[np.ndarray | None, str]]:
    """Worker task for the decoded cache: ``(array, "")`` or ``(None, reason)`` per path."""
    out: list[tuple[np.ndarray | None, str]] = []
    for rel in paths:
        try:
            img = load_image(Path(root, rel), channels, max_pixels, min_side, side, max_bytes)
            out.append((to_array(img, side), ""))
        except ImageLoadError as exc:
            out.append((None, exc.reason))
    return out
