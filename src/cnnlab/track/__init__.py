"""Experiment tracking: every run in MLflow, on an embedded store unless a server is named.

``track.backend=wandb`` logs the same content to Weights & Biases, offline
(:mod:`cnnlab.track.wandb_store`). Importing this package is cheap: MLflow (or wandb) is
imported only by the tracking process
(:mod:`cnnlab.track.agent`) and by the commands that talk to a store (``cnnlab track log``,
``cnnlab track register``, ``cnnlab ui``). The run folder stays the source of truth; a tracker
that fails costs one warning, and ``cnnlab track log`` sends what it missed.

Example:
    >>> from cnnlab import track
    >>> with track.parent_run(cfg, "study", "lr-sweep", {"vary": "train.lr"}) as parent:
    ...     runs = [fit(c) for c in cells]                     # nested under the study
    ...     parent.tag_best(runs[0].path)                      # doctest: +SKIP
    >>> track.flush()                                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnlab.track.live import flush
from cnnlab.track.parents import Parent, current_parent, parent_run, tag_best
from cnnlab.track.target import resolve_target

if TYPE_CHECKING:
    from cnnlab.config import Config

__all__ = ["Parent", "current_parent", "flush", "observers_for", "parent_run", "tag_best"]


def observers_for(cfg: Config) -> list[Any]:
    """The run observers ``fit`` uses for this config: none when tracking is off."""
    if resolve_target(cfg.track, cfg.runs_dir) is None:
        return []
    from cnnlab.track.live import TrackingObserver

    return [TrackingObserver(cfg.track)]
