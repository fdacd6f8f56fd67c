"""An ensemble in the tracker: a parent run (kind ``ensemble``) that names its members.

The ensemble folder is itself logged like a run folder (its config as params, val/test
metrics, report, plots, predictions), and each member's run is tagged
``cnnlab.member_of.<ensemble>`` with its weight. Members are tagged rather than nested: a
member may already be nested under its study, and one run may serve several ensembles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cnnlab.ensemble.members import Member
    from cnnlab.runs import Run


def track_ensemble(ensemble: Run, members: Sequence[Member], weights: Sequence[float]) -> None:
    """Log ``ensemble`` where its first member's ``track`` section says, into that member's
    store (by default ``mlflow.db`` in the folder that holds the member, where the members
    already are), wherever ``--out`` put the ensemble folder; no-op when off.

    The folder that holds the ensemble is not the store: ``--out ens1`` made a stray
    ``mlflow.db`` in the working folder, logged the members into it a second time, and
    ``cnnlab ui`` on the runs folder never showed the ensemble.
    """
    from cnnlab import track
    from cnnlab.config import Config

    first = members[0].run
    tracking = first.config.get("track") or {}
    cfg = Config.model_validate({"runs_dir": str(first.path.parent), "track": tracking})
    params = {"weights": [round(float(w), 6) for w in weights]}
    with track.parent_run(cfg, "ensemble", ensemble.name, params, ensemble.path) as parent:
        for member, weight in zip(members, weights, strict=True):
            parent.tag_member(member.run.path, f"weight {float(weight):.4g}")
        parent.log_folder(ensemble.path)
