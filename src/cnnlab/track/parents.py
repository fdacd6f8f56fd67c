"""Parent runs: a study or a tune is one MLflow run with each of its runs nested under it."""

from __future__ import annotations

import contextvars
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab import console
from cnnlab.track.content import end_status
from cnnlab.track.live import Session, session_for
from cnnlab.track.target import locked, logged_key, read_state, resolve_target, write_state

if TYPE_CHECKING:
    from cnnlab.config import Config


@dataclass
class Parent:
    """A parent run; ``info`` is None when tracking is off (then every method is a no-op)."""

    info: dict[str, Any] | None
    session: Session | None = None

    def tag_best(self, run_dir: str | Path) -> None:
        """Tag a finished child run as the best one; the parent points at it too."""
        if self.info is None or self.session is None:
            return
        run_dir = Path(run_dir)
        with locked(run_dir):
            state = read_state(run_dir)
            state["best"] = True  # so a later `cnnlab track log` tags it again
            write_state(run_dir, state)
        self.session.send("best", parent=self.info, run_dir=str(run_dir))

    def log_runs(self, run_dirs: Iterable[str | Path]) -> None:
        """Make sure each run folder is in the store, complete, with how it ended.

        A run that ended in an earlier invocation killed before its tracker logged it (a
        study's events wait in memory until the study ends) is sent again; a run this
        process has ended, or that its ``track.json`` says is logged already, is not.
        """
        if self.info is None or self.session is None:
            return
        key = logged_key(self.session.target)
        for run_dir in dict.fromkeys(Path(d).resolve() for d in run_dirs):  # once each
            if str(run_dir) in self.session.ended_runs or not (run_dir / "config.yaml").is_file():
                continue
            with locked(run_dir):
                state = read_state(run_dir)
                end = end_status(run_dir, state)
                if (state.get("logged") or {}).get(key) == end:
                    continue
                state.setdefault("parent", self.info)  # trained while tracking was off
                write_state(run_dir, state)
            self.session.send("sync", run_dir=str(run_dir), end=end)

    def tag_member(self, run_dir: str | Path, label: str) -> None:
        """Tag a finished run as a member of this parent (an ensemble's members).

        Members are tagged, not nested: a member may already be nested under its study, and
        one run may belong to several ensembles. A member the store lacks is logged first.
        """
        if self.info is None or self.session is None:
            return
        where = str(Path(run_dir).resolve())
        self.session.send("member", parent=self.info, run_dir=where, label=label)

    def log_folder(self, folder: str | Path, end: str = "FINISHED") -> None:
        """Log a run-like folder that is this parent itself (an ensemble folder): its
        config as params, its final metrics and its files, as ``cnnlab track log`` would."""
        if self.info is None or self.session is None:
            return
        self.session.send("sync", run_dir=str(Path(folder).resolve()), end=end)

    def log(self, files: Iterable[str | Path] = (), tags: dict[str, str] | None = None) -> None:
        """Attach files (a study's table and report) and tags to the parent run.

        MLflow gets a file only when it lacks it or its size changed, so logging again after a
        resumed study replaces what changed; W&B (offline) gets them again in the resumed run.
        """
        if self.info is None or self.session is None:
            return
        found = [str(Path(f).resolve()) for f in files if Path(f).is_file()]
        self.session.send("parent", parent=self.info, files=found, tags=dict(tags or {}))


_CURRENT: contextvars.ContextVar[Parent | None] = contextvars.ContextVar(
    "cnnlab_parent_run", default=None
)
# The open parent, for worker processes a study or tune starts inside the block.
PARENT_ENV = "CNNLAB_TRACK_PARENT"


def current_parent() -> Parent | None:
    """The parent run that runs started now are nested under (None outside one).

    In a worker process started inside a ``parent_run`` block (a study's ``--workers``), the
    parent comes from the environment it inherited.
    """
    parent = _CURRENT.get()
    if parent is None and os.environ.get(PARENT_ENV):
        return Parent(json.loads(os.environ[PARENT_ENV]))
    return parent


def _parent_uid(folder: Path | None, kind: str, name: str) -> str:
    """A new identity, or the one a study's folder keeps (a resumed study reuses it)."""
    if folder is None:
        return uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        state = read_state(folder)
        state.update(kind=kind, name=name)
        write_state(folder, state)
    return state["uid"]


@contextmanager
def parent_run(
    cfg: Config,
    kind: str,
    name: str,
    params: dict[str, Any] | None = None,
    folder: str | Path | None = None,
    wait: bool = False,
) -> Iterator[Parent]:
    """Log a parent run; every ``fit`` started inside the block becomes its child.

    Args:
        cfg: the config the children train with (its ``track`` section and ``runs_dir``).
        kind: ``study``, ``tune``, ``ensemble``...: the parent's ``cnnlab.kind`` tag.
        name: the parent's run name.
        params: the parent's params (nested dicts are flattened).
        folder: the study's or tune's own folder; its ``track.json`` keeps the parent's
            identity, so a resumed study continues the same parent run.
        wait: when the block ends (not by Ctrl-C), wait until the tracker has logged
            everything (at most ``WAIT_S``), so that a failure is reported before the command
            returns. Studies and tunes wait: their runs are logged once they have all trained.

    Example:
        >>> with parent_run(cfg, "study", "lr-sweep", {"vary": "train.lr"}) as parent:
        ...     runs = [fit(c) for c in cells]
        ...     parent.tag_best(runs[0].path)  # doctest: +SKIP
    """
    target = resolve_target(cfg.track, cfg.runs_dir)
    if target is None:
        yield Parent(None)
        return
    uid = _parent_uid(Path(folder) if folder is not None else None, kind, name)
    info = {"uid": uid, "kind": kind, "name": name, "params": params or {}}
    session = session_for(target, str(cfg.runs_dir))
    parent = Parent(info, session)
    session.send("parent", parent=info)
    token, inherited = _CURRENT.set(parent), os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = json.dumps(info)
    status = "FAILED"
    try:
        yield parent
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        _CURRENT.reset(token)
        _restore_env(inherited)
        session.send("parent", parent=info, end=status)
    if wait:
        _wait_for(session)


WAIT_S = 900.0  # seconds a study or tune waits at its end for its tracker, at most


def _wait_for(session: Session) -> None:
    if not session.pending():
        return
    console.info("tracking: logging the runs before returning (Ctrl-C leaves it to the background)")
    if not session.flush(WAIT_S):
        console.info("tracking: still logging in the background; the runs appear in the store soon")


def _restore_env(value: str | None) -> None:
    if value is None:
        os.environ.pop(PARENT_ENV, None)
    else:
        os.environ[PARENT_ENV] = value


def tag_best(run_dir: str | Path) -> None:
    """Tag ``run_dir`` as the best child of the parent run open now (no-op outside one)."""
    parent = current_parent()
    if parent is not None:
        parent.tag_best(run_dir)
