"""Where cnnlab keeps its caches: never inside the user's dataset folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$CNNLAB_CACHE`` (default ``~/.cache/cnnlab``) joined with ``parts``, created."""
    root = Path(os.environ.get("CNNLAB_CACHE") or Path.home() / ".cache" / "cnnlab")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """True when the user asked cnnlab never to reach a model hub (``CNNLAB_OFFLINE=1``)."""
    return os.environ.get("CNNLAB_OFFLINE", "").lower() in {"1", "true", "yes"}
