"""Uploaded files -> checked PIL images, or a friendly message per file.

A visitor's upload is untrusted: its name and the browser's type filter say nothing about its
content. Each file goes through the size cap first, then cnnlab's one image decoder
(:func:`cnnlab.data.image.load_image_bytes`): the format is read from the content and must be
one of cnnlab's :data:`~cnnlab.data.image.FORMATS`, and the pixel-bomb guard runs before any
pixel is decoded. Messages
name the file as the visitor named it, never a server path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from PIL import Image

from cnnlab.data.image import load_image_bytes
from cnnlab.errors import ImageLoadError

ACCEPTED = "PNG, JPEG, BMP, WebP, TIFF or GIF"  # data.image.FORMATS, as people name them
_WHY = {
    "empty": "is empty",
    "not an image": f"is not a picture this app reads ({ACCEPTED})",
    "truncated": "is damaged or cut short",
    "too large": "has too many pixels to open safely",
    "too small": "is too small (a few pixels)",
}


@dataclass
class Upload:
    """One uploaded file after checking: its decoded image, or why it was refused."""

    name: str
    image: Image.Image | None = None
    problem: str = ""


def display_name(name: str) -> str:
    """The file's own name without any folder part a browser may have sent."""
    return PurePath(name.replace("\\", "/")).name or "upload"


def check_upload(
    name: str, data: bytes, max_bytes: int, channels: int = 3, draft_side: int | None = None
) -> Upload:
    """Check and decode one upload; never raises for bad content."""
    name = display_name(name)
    if len(data) > max_bytes:
        limit = max_bytes / 2**20
        return Upload(name, problem=f"{name} is larger than the {limit:g} MB limit")
    try:
        image = load_image_bytes(data, name, channels=channels, draft_side=draft_side)
    except ImageLoadError as exc:
        return Upload(name, problem=f"{name} {_WHY.get(exc.reason, 'cannot be read')}")
    return Upload(name, image=image)


def check_uploads(files: Any, max_bytes: int, **kwargs: Any) -> list[Upload]:
    """Streamlit ``UploadedFile`` objects (anything with ``name`` and ``getvalue()``)."""
    return [check_upload(f.name, f.getvalue(), max_bytes, **kwargs) for f in files or []]
