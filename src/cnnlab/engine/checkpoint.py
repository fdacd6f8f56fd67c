"""Checkpoints that survive crashes and never run code on load.

* Saving writes a temp file in the same folder, fsyncs it and renames it over the target, so
  a crash mid-save leaves the previous checkpoint intact; once the new ``last.ckpt`` is
  written, the old one is renamed to ``last-prev.ckpt``, so a damaged ``last`` still has a good
  predecessor. A rename, not a hard link: a link would leave both names on one file for the
  moment before the new ``last`` lands, and a kill there made damage to ``last`` damage its
  predecessor too. A kill between the two renames leaves no ``last`` and a good ``last-prev``.
* Loading always uses ``torch.load(weights_only=True)``: a pickle that would import or call
  anything outside plain containers and tensors is refused (``CheckpointError``), with no
  fallback to unsafe loading. Lightning's own checkpoint content (loop, optimizer, scheduler,
  callback and precision states) is plain data and loads this way as long as the module keeps
  its hyperparameters out of the checkpoint (``ClassifierModule`` does not call
  ``save_hyperparameters``: a pydantic config there is exactly what weights_only rejects).
* Final weights are safetensors (:mod:`cnnlab.models.state`), checked key by key on load.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cnnlab.atomic import atomic_path
from cnnlab.console import warn
from cnnlab.errors import CheckpointError, brief

LAST = "last.ckpt"
LAST_PREV = "last-prev.ckpt"
BEST = "best.ckpt"


class _KeepWriteError(io.RawIOBase):
    """A file wrapper that keeps the ``OSError`` of a failed write.

    torch's C++ writer turns a full disk into an opaque ``RuntimeError`` ("unexpected pos");
    keeping the original lets the user see "No space left on device" and the path.
    """

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`cnnlab.atomic.atomic_path` (temp file, fsync, rename).

    Ctrl-C waits until both renames are done (:func:`~cnnlab.engine.interrupt.interrupts_held`):
    between them ``last.ckpt`` is missing, and the new one, complete, would be thrown away.
    """
    from cnnlab.engine.interrupt import interrupts_held

    path = Path(path)
    with interrupts_held(), atomic_path(path) as tmp:
        with tmp.open("wb") as fh:
            sink = _KeepWriteError(fh)
            try:
                torch.save(obj, sink)
            except RuntimeError:
                if sink.error is not None:
                    raise sink.error from None
                raise
        if path.name == LAST and path.is_file():
            # The new bytes are complete: the old last becomes last-prev (its own file).
            os.replace(path, path.with_name(LAST_PREV))


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
                f"checkpoint refused: {path} asks to run code on load ({_short(reason)});"
                " only load checkpoints written by cnnlab"
            ) from None
        raise CheckpointError(f"checkpoint incomplete: {path} ({_short(str(exc))})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint incomplete: {path} ({_short(str(exc))})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint (a {type(obj).__name__}, not a dict)")
    return obj


def _short(text: str, limit: int = 160) -> str:
    """The first sentence of a library's message, cut at a word (never mid-word) to ``limit``."""
    return brief(" ".join(text.split()).split(". ", 1)[0].rstrip("."), limit)


# What Lightning needs to continue a fit where a checkpoint left it; best.ckpt holds all of it
# too (ModelCheckpoint saves the full state unless save_weights_only), so it can stand in.
_TRAINING_STATE = ("epoch", "global_step", "state_dict", "optimizer_states", "loops", "callbacks")


def _complete(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it loads and holds the full training state; else None,
    with the reason added to ``problems``. One that would run code is an error, never skipped."""
    try:
        ckpt = safe_load_checkpoint(path)
    except CheckpointError as exc:
        if "refused" in str(exc):
            raise
        problems.append(str(exc))
        return None
    missing = [k for k in _TRAINING_STATE if k not in ckpt]
    if missing:
        problems.append(f"{path} holds no training state to resume ({', '.join(missing)})")
        return None
    return ckpt


def find_resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run: ``last.ckpt``, else the later of
    ``last-prev.ckpt`` and ``best.ckpt`` (the previous one when both hold the same epoch).

    Returns ``None`` when the run has no checkpoint yet. Falls back with a warning when
    ``last.ckpt`` is damaged or missing; a checkpoint that would run code is an error.
    """
    folder = Path(run_dir) / "checkpoints"
    last, fallbacks = folder / LAST, [folder / LAST_PREV, folder / BEST]
    if not any(p.is_file() for p in (last, *fallbacks)):
        return None
    problems: list[str] = []
    if last.is_file() and _complete(last, problems) is not None:
        return last
    if not last.is_file():
        problems.append(f"{last} is missing")
    found = [(c["epoch"], p) for p in fallbacks if p.is_file() and (c := _complete(p, problems))]
    if not found:
        raise CheckpointError(
            f"no complete checkpoint in {folder} ({'; '.join(problems)}); start a new run instead"
        )
    epoch, path = max(found, key=lambda f: f[0])  # max keeps the first of equals: last-prev
    what = (
        "the best epoch's checkpoint, which holds the full training state"
        if path.name == BEST
        else "the previous checkpoint"
    )
    warn(f"{problems[0]}; resuming from {what} {path.name} (epoch {epoch + 1})")
    return path


def resume_epoch(run_dir: str | Path) -> int:
    """Epochs complete in the checkpoint a resume of ``run_dir`` would start from (0: none)."""
    try:
        path = find_resume_checkpoint(run_dir)
        return 0 if path is None else int(safe_load_checkpoint(path)["epoch"]) + 1
    except (CheckpointError, KeyError, TypeError, ValueError):
        return 0
