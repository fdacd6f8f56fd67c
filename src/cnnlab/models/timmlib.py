"""timm, imported without the wandb import it never needs here.

``timm.utils`` imports wandb whenever it is installed (cnnlab's ``[wandb]`` extra, or the dev
install), only for ``update_summary(log_wandb=True)`` of timm's own training script, which
cnnlab never calls. That import was ~40% of importing timm in every process that builds a
timm model (measured here: 9.9 against 6.1 user CPU-s for ``import timm`` on a busy 2-core
machine). So the first import of timm hides wandb for its duration; wandb imports normally
afterwards (``track.backend=wandb`` imports it when it logs).
"""

from __future__ import annotations

import sys
from types import ModuleType


def import_timm() -> ModuleType:
    """The ``timm`` module; its first import here skips wandb (see the module docstring)."""
    if "timm" not in sys.modules and "wandb" not in sys.modules:
        sys.modules["wandb"] = None  # type: ignore[assignment]  # `import wandb` -> ImportError
        try:
            import timm
        finally:
            if "wandb" in sys.modules and sys.modules["wandb"] is None:
                del sys.modules["wandb"]
    import timm

    return timm
