"""A model's weights on disk: safetensors, written atomically, loaded exactly.

The one reader and writer of ``model.safetensors`` (training writes it, the Predictor, export,
ensembles and the app read it). safetensors holds tensors only, so loading never runs code;
every key and shape is checked, and a mismatch names the keys instead of loading half a model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.atomic import atomic_path
from cnnlab.errors import CheckpointError


def save_weights(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write the model's state dict as safetensors, atomically (tied tensors are copied)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    # Serialised in memory and written by Python, so a full disk is a plain OSError naming
    # the file (safetensors' own writer hides it inside a SafetensorError).
    blob = save(tensors, metadata={"format": "cnnlab-weights/1", **(metadata or {})})
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)


def _describe_mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> str:
    def short(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")

    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = [
        f"{k} {tuple(got[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(got))
        if got[k].shape != expected[k].shape
    ]
    parts = []
    if missing:
        parts.append(f"missing keys: {short(missing)}")
    if extra:
        parts.append(f"unexpected keys: {short(extra)}")
    if shapes:
        parts.append(f"shape mismatch: {short(shapes)}")
    return "; ".join(parts)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``model`` exactly; any key or shape mismatch is an error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights not found: {path}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint incomplete: {path} ({exc})") from None
    problem = _describe_mismatch(model.state_dict(), tensors)
    if problem:
        raise CheckpointError(f"{path} does not fit the model: {problem}")
    model.load_state_dict(tensors, strict=True)
    return model
