"""Train one configuration into a fixed run folder, whatever state a crash left it in.

A scheduled run's folder name is decided before it starts (a study's ``runs/c2-seed1``, a
tune's ``runs/trial-0007``), so a worker that picks the run up again finds it: finished runs
are kept, an interrupted one resumes from its last checkpoint, one that never reached a
checkpoint starts over. A run that diverges or raises is recorded as failed, with its reason
in ``failed.json`` inside the run folder, and :class:`~cnnlab.schedule.worker.RunFailed` is
raised so the scheduler records it and moves on.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.config import Config
from cnnlab.errors import CnnlabError
from cnnlab.runlock import RunBusy
from cnnlab.runs import CHECKPOINTS, METRICS, Run, read_json, write_json
from cnnlab.schedule.worker import RunFailed
from cnnlab.track.target import started_over

FAILED = "failed.json"  # in a run folder: {"reason": ..., "traceback": ...}
_LOSSES = ("train/loss", "val/loss")
DIVERGED = "training diverged"  # how a diverged run's reason begins
# A cross-entropy above this means the true class got probability ~e^-1e6: the weights blew up.
_EXPLODED = 1e6
# Checkpoints a resume can go on from (engine.checkpoint.find_resume_checkpoint): last.ckpt is
# briefly missing while a new one replaces it, and best.ckpt holds the full training state too.
RESUMABLE_FROM = ("last.ckpt", "last-prev.ckpt", "best.ckpt")


def read_failure(run_dir: Path) -> str | None:
    """The recorded reason a run failed, or None."""
    file = Path(run_dir) / FAILED
    if not file.is_file():
        return None
    try:
        return str(read_json(file).get("reason") or "failed")
    except CnnlabError:
        return "failed (unreadable failed.json)"


def is_divergence(reason: str) -> bool:
    """Whether a recorded failure is the setting's own result (training diverged): trained
    again, it diverges again, so a resume keeps it; any other failure (a missing file, no
    memory, a full disk, a killed worker) may be gone once its cause is fixed."""
    return reason.startswith(DIVERGED)


def clear_failure(run_dir: Path) -> None:
    """Forget a run's failure so that it is trained again (resumed from a checkpoint it saved,
    else started over in the same tracking run). The old reason stays in the schedule."""
    (Path(run_dir) / FAILED).unlink(missing_ok=True)


def divergence(run_dir: Path) -> str | None:
    """Why a finished run's training diverged (a loss that is NaN, infinite or above 1e6)."""
    rows = Run(run_dir).metrics()
    for row in rows:
        for key in _LOSSES:
            raw = (row.get(key) or "").strip()
            if not raw:
                continue
            value = float(raw)
            if not math.isfinite(value) or value > _EXPLODED:
                return (
                    f"{DIVERGED}: {key} became {value:.4g} at epoch "
                    f"{row.get('epoch', '?')} (a lower learning rate or gradient clipping "
                    "usually helps)"
                )
    return None


def _fail(run_dir: Path, reason: str, trace: str | None = None) -> RunFailed:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / FAILED, {"reason": reason, "traceback": trace})
    return RunFailed(reason)


def _train(cfg: Config, run_dir: Path, observers: Sequence[Any] | None) -> Run:
    from cnnlab.api import fit_config, resume_run

    if Run(run_dir).is_complete:
        return Run(run_dir)
    if any((run_dir / CHECKPOINTS / n).is_file() for n in RESUMABLE_FROM):
        return resume_run(run_dir, observers=observers)
    cfg = cfg.model_copy(update={"runs_dir": str(run_dir.parent), "name": run_dir.name})
    if not run_dir.exists():
        return fit_config(cfg, observers=observers)
    with started_over(run_dir):  # died before its first checkpoint: start over, same store run
        return fit_config(cfg, observers=observers)


def train_in_folder(cfg: Config, run_dir: Path, observers: Sequence[Any] | None = None) -> Run:
    """Train ``cfg`` into ``run_dir`` (skip if finished, resume if interrupted).

    ``observers`` are added to those the config asks for (a tune's pruner follows the epochs).

    Raises:
        RunFailed: the run failed before (``failed.json``), raised an error, or diverged;
            the reason is written to ``run_dir/failed.json`` first.
    """
    run_dir = Path(run_dir)
    earlier = read_failure(run_dir)
    if earlier is not None:
        raise RunFailed(earlier)
    try:
        run = _train(cfg, run_dir, observers)
    except RunBusy as exc:  # another process trains it: its folder is not ours to mark failed
        raise RunFailed(str(exc)) from exc
    except CnnlabError as exc:
        raise _fail(run_dir, str(exc)) from exc
    except Exception as exc:  # a bug or a library error in one run must not end a study
        reason = f"{type(exc).__name__}: {exc}"
        raise _fail(run_dir, reason, traceback.format_exc()) from exc
    diverged = divergence(run.path)
    if diverged is not None:
        raise _fail(run.path, diverged)
    if not (run.path / METRICS).is_file():
        raise _fail(run.path, "the run wrote no metrics.csv")
    return run
