"""Uploaded files -> checked PIL images, or a friendly message per file.

A visitor's upload is untrusted: its name and the browser's type filter say nothing about its
content. Each file goes through the size cap first, then cnnlab's one image decoder
(:func:`cnnlab.data.image.load_image_bytes`): the format is read from the content and must be
one of cnnlab's :data:`~cnnlab.data.image.FORMATS`, and the pixel-bomb guard runs before any
pixel is decoded. Messages
name the file as the visitor named it, never a server path.

That check decodes a small preview for the page. The prediction decodes the upload's bytes
again, through the predictor (:meth:`cnnlab.predict.Predictor.load`), exactly as ``cnnlab
predict`` decodes the file: an ensemble's members each at their own size, since a JPEG's
draft scale, and so its pixels, depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from PIL import Image

from cnnlab.data.image import load_image_bytes
from cnnlab.errors import ImageLoadError

ACCEPTED = "PNG, JPEG, BMP, WebP, TIFF or GIF"  # data.image.FORMATS, as people name them
PREVIEW_SIDE = 320  # px: a JPEG's preview is decoded near this (shown at 96 to 160 px)
_WHY = {
    "empty": "is empty",
    "not an image": f"is not a picture this app reads ({ACCEPTED})",
    "truncated": "is damaged or cut short",
    "too large": "has too many pixels to open safely",
    "too small": "is too small (a few pixels)",
}


@dataclass
class Upload:
    """One uploaded file after checking: its bytes and a preview, or why it was refused."""

    name: str
    image: Image.Image | None = None  # the preview the page shows (RGB)
    problem: str = ""
    data: bytes = b""  # what the predictor decodes, as it decodes a file


def display_name(name: str) -> str:
    """The file's own name without any folder part a browser may have sent."""
    return PurePath(name.replace("\\", "/")).name or "upload"


def check_upload(name: str, data: bytes, max_bytes: int) -> Upload:
    """Check one upload and decode its preview; never raises for bad content."""
    return check_named(display_name(name), data, max_bytes)


def check_named(name: str, data: bytes, max_bytes: int) -> Upload:
    """:func:`check_upload` under a name the server chose (a sample image's ``class/file``)."""
    if len(data) > max_bytes:
        limit = max_bytes / 2**20
        return Upload(name, problem=f"{name} is larger than the {limit:g} MB limit")
    try:
        image = load_image_bytes(data, name, draft_side=PREVIEW_SIDE)
    except ImageLoadError as exc:
        return Upload(name, problem=f"{name} {_WHY.get(exc.reason, 'cannot be read')}")
    return Upload(name, image=image, data=data)


def check_uploads(files: Any, max_bytes: int) -> list[Upload]:
    """Streamlit ``UploadedFile`` objects (anything with ``name`` and ``getvalue()``)."""
    return [check_upload(f.name, f.getvalue(), max_bytes) for f in files or []]
