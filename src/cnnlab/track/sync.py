"""Bring a tracking store up to date with run folders (the folder is the source of truth).

The same :func:`sync_run` serves live logging (after each epoch and at the end of ``fit``)
and ``cnnlab track log`` afterwards; it is idempotent, so a run logged twice, or logged live
until the server went away and then again later, ends up as one complete MLflow run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, RunError
from cnnlab.runs import CONFIG
from cnnlab.track.content import SyncReport, end_status, read_run, tracker_key
from cnnlab.track.mlflow_store import MEMBER_TAG, PARENT_TAG, MlflowStore
from cnnlab.track.target import (
    STATE,
    Target,
    TrackingError,
    locked,
    logged_key,
    one_line,
    open_store,
    read_state,
    require_server,
    run_target,
    write_state,
)


def sync_run(store: MlflowStore, run_dir: Path, end: str | None = None) -> SyncReport:
    """Log what the store lacks of one run folder.

    Args:
        store: the destination.
        run_dir: the run folder (finished, or still training).
        end: None while the run trains (values only); at its end FINISHED / FAILED /
            KILLED, which also sends the artifacts and sets that status.
    """
    run_dir = Path(run_dir)
    with locked(run_dir):
        state = read_state(run_dir)
        content = read_run(run_dir)
        tags = dict(content.tags)
        if state.get("git_commit"):
            tags["cnnlab.git_commit"] = state["git_commit"]
        if state.get("parent"):
            tags[PARENT_TAG] = store.parent(state["parent"])
        if state.get("best"):
            tags["cnnlab.best"] = "true"
        run_id, created = store.ensure_run(state["uid"], tags)
        report = store.log_values(run_id, content, tags)
        report.created = created
        if end is not None:
            report.files = store.log_files(run_id, content.files)
            report.status = end if store.finish(run_id, end) else None
            # a study resumed after a kill need not send this run again
            state.setdefault("logged", {})[logged_key(store.target)] = end
            write_state(run_dir, state)
        elif not (run_dir / STATE).is_file():
            write_state(run_dir, state)  # the uid must outlive this process
    return report


def tag_best(store: MlflowStore, parent: dict, run_dir: Path) -> None:
    """Tag ``run_dir``'s MLflow run as the best child of ``parent``.

    A run the store lacks is logged whole first, with how it ended: tagging never leaves a
    run RUNNING, nor reopens one.
    """
    run_dir = Path(run_dir)
    report = sync_run(store, run_dir, end_status(run_dir, read_state(run_dir)))
    store.tag_best(store.parent(parent), report.run_id, run_dir.name)


def member_tag(parent_name: str) -> str:
    """The tag naming a member of ``parent_name`` (as :func:`~cnnlab.track.content.tracker_key`
    makes any name: characters MLflow refuses become ``_``).

    >>> member_tag("ensemble soft (v2)")
    'cnnlab.member_of.ensemble soft _v2_'
    """
    return tracker_key(MEMBER_TAG + parent_name)


def tag_member(store: MlflowStore, parent: dict, run_dir: Path, label: str) -> None:
    """Tag ``run_dir``'s MLflow run as a member of ``parent``; a member the store lacks
    (trained with tracking off, or into another store) is logged whole first."""
    run_dir = Path(run_dir)
    report = sync_run(store, run_dir, end_status(run_dir, read_state(run_dir)))
    store.client.set_tag(report.run_id, member_tag(parent["name"]), label)


def expand_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders named directly, or found one level inside a folder of runs."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / CONFIG).is_file():
            found.append(path)
        elif path.is_dir() and (inside := sorted(p.parent for p in path.glob(f"*/{CONFIG}"))):
            found.extend(inside)
        else:
            raise RunError(f"{path}: not a run folder, nor a folder of runs (no {CONFIG})")
    return found


def log_runs(
    paths: Iterable[str | Path], overrides: list[str] | None = None
) -> Iterator[tuple[Path, SyncReport]]:
    """``cnnlab track log``: log finished (or interrupted) run folders, idempotently.

    Each run goes where its config's ``track`` section says (``track.*`` overrides win): MLflow,
    or W&B when that is the backend named; it ends as it ended when trained (FINISHED, FAILED,
    KILLED), or, for a folder trained without tracking, FINISHED with a complete
    ``summary.json`` and KILLED with anything less. Yields each run as it is logged.

    Raises:
        TrackingError: the store cannot be reached or refuses the run (one line, naming it).
    """
    stores: dict[Target, Any] = {}
    for run_dir in expand_runs(paths):
        target = run_target(run_dir, overrides, any_backend=True)
        try:
            if target not in stores:
                require_server(target.uri)  # seconds, not minutes of retries
                stores[target] = open_store(target)
            report = stores[target].sync(run_dir, end_status(run_dir, read_state(run_dir)))
        except CnnlabError:
            raise
        except Exception as exc:  # MLflow's own, or the HTTP stack's below it
            raise TrackingError(f"{run_dir}: not logged to {target.uri}: {one_line(exc)}") from exc
        yield run_dir, report
