"""Checkpoints that survive crashes and never run code on load.

* Saving writes a temp file in the same folder, fsyncs it and renames it over the target, so
  a crash mid-save leaves the previous checkpoint intact; ``last.ckpt`` is rotated into
  ``last-prev.ckpt`` first, so a damaged ``last`` still has a good predecessor.
* Loading always uses ``torch.load(weights_only=True)``: a pickle that would import or call
  anything outside plain containers and tensors is refused (``CheckpointError``), with no
  fallback to unsafe loading. Lightning's own checkpoint content (loop, optimizer, scheduler,
  callback and precision states) is plain data and loads this way as long as the module keeps
  its hyperparameters out of the checkpoint (``ClassifierModule`` does not call
  ``save_hyperparameters``: a pydantic config there is exactly what weights_only rejects).
* Final weights are safetensors, checked key by key and shape by shape on load.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from cnnlab.console import warn
from cnnlab.errors import CheckpointError

LAST = "last.ckpt"
LAST_PREV = "last-prev.ckpt"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _rotate_last(path: Path) -> None:
    """Keep the current ``last.ckpt`` as ``last-prev.ckpt`` (atomically) before replacing it."""
    prev = path.with_name(LAST_PREV)
    tmp = path.with_name(f".{LAST_PREV}.rotating")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)  # cheap: same bytes, no copy
    except OSError:
        shutil.copy2(path, tmp)
    os.replace(tmp, prev)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if path.name == LAST and path.is_file():
            _rotate_last(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with atomic saves and weights-only loads."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(
        self,
        path: Any,
        map_location: Callable | Any = "cpu",
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        # weights_only is ignored on purpose: our checkpoints never need unsafe loading.
        return safe_load_checkpoint(path, map_location=map_location)


def safe_load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: missing, empty or truncated ("checkpoint incomplete: PATH"), or its
            pickle asks for code to run ("unsafe").
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint incomplete: {path} (empty file)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            first = str(exc).strip().splitlines()
            reason = next((ln for ln in first if "Unsupported" in ln or "GLOBAL" in ln), "")
            raise CheckpointError(
                f"checkpoint refused: {path} asks to run code on load ({reason.strip()[:160]});"
                " only load checkpoints written by cnnlab"
            ) from None
        raise CheckpointError(f"checkpoint incomplete: {path} ({exc})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint incomplete: {path} ({str(exc)[:120]})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint (a {type(obj).__name__}, not a dict)")
    return obj


def find_resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run: ``last.ckpt``, else ``last-prev.ckpt``.

    Returns ``None`` when the run has no checkpoint yet. Falls back with a warning when
    ``last.ckpt`` is damaged; a checkpoint that would run code is an error, never skipped.
    """
    folder = Path(run_dir) / "checkpoints"
    candidates = [p for p in (folder / LAST, folder / LAST_PREV) if p.is_file()]
    if not candidates:
        return None
    problems = []
    for path in candidates:
        try:
            safe_load_checkpoint(path)
        except CheckpointError as exc:
            if "refused" in str(exc):
                raise
            problems.append(str(exc))
            continue
        if problems:
            warn(f"{problems[0]}; resuming from the previous checkpoint {path.name}")
        return path
    raise CheckpointError(
        f"no complete checkpoint in {folder} ({'; '.join(problems)}); start a new run instead"
    )


def save_weights(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write the model's state dict as safetensors, atomically (tied tensors are copied)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": "cnnlab-weights/1", **(metadata or {})})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    expected = model.state_dict()
    problem = _describe_mismatch(expected, tensors)
    if problem:
        raise CheckpointError(f"{path} does not fit the model: {problem}")
    model.load_state_dict(tensors, strict=True)
    return model
