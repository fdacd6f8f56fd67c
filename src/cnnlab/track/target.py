"""Where runs are logged (backend, URI, experiment) and each run folder's tracking identity.

A run folder keeps ``track.json``: a random ``uid`` that names it in every tracking store (a
run is found again by this tag, so logging twice never duplicates it), the git commit of the
working folder it was trained from, and its parent (a study or a tune), if any.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import subprocess
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.errors import CnnlabError, ConfigError, brief

if TYPE_CHECKING:
    from cnnlab.config import TrackConfig

STATE = "track.json"
BACKEND_ENV = "CNNLAB_TRACK"  # mlflow | wandb | none: what track.backend=auto means
BACKENDS = ("mlflow", "wandb", "none")
WANDB_HINT = "pip install 'cnnlab[wandb]'"
DB_NAME = "mlflow.db"
ARTIFACTS_NAME = "mlartifacts"
CONNECT_S = 3.0  # seconds to wait for a tracking server to accept a connection
# A tracker must give up quickly on a server that is down or went away: training never waits
# for it, and `cnnlab track log` says so in seconds. (MLflow's defaults retry for minutes.)
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # seconds, doubling per retry
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",  # seconds per request
}


class TrackingError(CnnlabError):
    """A tracking store that cannot be reached or refuses what is sent (one line, no trace)."""


@dataclass(frozen=True)
class Target:
    """One tracking destination: an MLflow store and an experiment in it."""

    backend: str
    uri: str
    experiment: str
    artifact_location: str | None = None  # for new experiments in a local SQLite store

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Target:
        return cls(**json.loads(text))


def resolve_backend(backend: str) -> str:
    """``auto`` becomes ``$CNNLAB_TRACK`` when set, else ``mlflow``."""
    if backend != "auto":
        return backend
    chosen = os.environ.get(BACKEND_ENV, "").strip().lower() or "mlflow"
    if chosen not in BACKENDS:
        raise ConfigError(f"{BACKEND_ENV}={chosen!r}: expected one of {', '.join(BACKENDS)}")
    return chosen


def default_uri(runs_dir: str | Path) -> str:
    """The embedded store: ``sqlite:///<runs_dir>/mlflow.db`` (absolute path)."""
    return "sqlite:///" + (Path(runs_dir).resolve() / DB_NAME).as_posix()


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :]).resolve()


def resolve_target(track: TrackConfig, runs_dir: str | Path) -> Target | None:
    """The destination a config names, or None when tracking is off."""
    backend = resolve_backend(track.backend)
    if backend == "none":
        return None
    if backend == "wandb":
        return _wandb_target(track, runs_dir)
    uri = track.uri or default_uri(runs_dir)
    db = _sqlite_file(uri)
    if db is not None:
        uri = "sqlite:///" + db.as_posix()  # a relative path means the same file from anywhere
    artifacts = (db.parent / ARTIFACTS_NAME).as_uri() if db is not None else None
    return Target(backend, uri, track.experiment, artifacts)


def logged_key(target: Target) -> str:
    """How a run folder's ``track.json`` names ``target`` when noting what was logged there."""
    return f"{target.backend} {target.uri} {target.experiment}"


def unreachable(uri: str, timeout: float = CONNECT_S) -> str | None:
    """Why an ``http(s)://`` tracking server cannot be reached (None when it accepts a
    connection, or when ``uri`` names no server). Costs one TCP connection, no MLflow import.

    >>> unreachable("sqlite:///runs/mlflow.db") is None
    True
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return str(reason).lower()


def require_server(uri: str) -> None:
    """Raise a one-line :class:`TrackingError` when the server ``uri`` names is down."""
    why = unreachable(uri)
    if why is not None:
        raise TrackingError(
            f"cannot reach the tracking server {uri} ({why}); start it, or name another "
            "with track.uri=..."
        )


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line (MLflow's messages span many; :func:`~cnnlab.errors.brief`).

    >>> one_line(ValueError("bad\\n  value"))
    'bad value'
    """
    return brief(str(exc), limit) or type(exc).__name__


def quiet_libraries() -> None:
    """Keep MLflow's chatter (table migrations, retries, deprecations, progress bars) off the
    console, and make it give up on a server in seconds. Call before importing MLflow; cnnlab's
    own messages do not go through ``warnings`` or ``logging``, so they still print."""
    warnings.simplefilter("ignore")
    warnings.showwarning = _drop  # MLflow turns some back on around its own calls
    logging.disable(logging.WARNING)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _drop(*args: Any, **kwargs: Any) -> None:
    """A ``warnings.showwarning`` that shows nothing."""


def require_wandb() -> None:
    """A clear one-line error when W&B is asked for and not installed (wandb is not imported)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("wandb") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(f"track.backend=wandb needs the wandb package: {WANDB_HINT}")


def _wandb_target(track: TrackConfig, runs_dir: str | Path) -> Target:
    """W&B logs offline into a folder: ``track.uri`` (a folder) or the runs folder."""
    require_wandb()
    if track.uri and "://" in track.uri:
        raise ConfigError(
            f"track.uri={track.uri}: with track.backend=wandb, track.uri is the folder W&B "
            "writes its offline runs to (a W&B server is chosen with WANDB_BASE_URL)"
        )
    return Target("wandb", Path(track.uri or runs_dir).resolve().as_posix(), track.experiment)


def open_store(target: Target) -> Any:
    """The store a target names: an MLflow experiment or a W&B project (imports its library)."""
    if target.backend == "wandb":
        from cnnlab.track.wandb_store import WandbStore

        return WandbStore(target)
    from cnnlab.track.mlflow_store import MlflowStore

    return MlflowStore(target)


def run_target(
    run_dir: Path, overrides: list[str] | None = None, any_backend: bool = False
) -> Target:
    """Where ``cnnlab track log/register`` sends a run: its config's ``track`` section with
    ``track.*`` overrides; the default store is the one in the folder that holds the run.

    Asking to log is asking for MLflow, whatever training used, unless ``any_backend`` and the
    section (or an override) names W&B."""
    from cnnlab.config import TrackConfig, parse_override
    from cnnlab.runs import Run

    values = dict((Run(run_dir).config or {}).get("track") or {})
    for text in overrides or []:
        key, value = parse_override(text)
        if not key.startswith("track."):
            raise ConfigError(f"'{key}': only track.* keys can be set here (e.g. track.uri=...)")
        values[key.split(".", 1)[1]] = value
    wandb = any_backend and values.get("backend") == "wandb"
    values["backend"] = "wandb" if wandb else "mlflow"
    target = resolve_target(TrackConfig.model_validate(values), run_dir.parent)
    assert target is not None
    return target


def local_db(target: Target) -> Path | None:
    """The SQLite file of an embedded store (None for a server or another database)."""
    return _sqlite_file(target.uri)


def _lock_file(path: Path) -> Path:
    from cnnlab.paths import cache_dir

    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return cache_dir("locks") / f"{digest}.lock"


@contextmanager
def locked(path: Path, timeout: float = 600.0) -> Iterator[None]:
    """An inter-process lock named after ``path`` (kept in the cache, not beside ``path``)."""
    from filelock import FileLock

    with FileLock(str(_lock_file(path)), timeout=timeout):
        yield


def _load_state(folder: Path) -> dict[str, Any]:
    file = folder / STATE
    if not file.is_file():
        return {}
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged file: a fresh identity is better than no tracking
    return state if isinstance(state, dict) else {}


# What a copied folder keeps of its original's track.json: where it came from, not what
# was logged of the original (a copy is logged, tagged best and ended on its own).
_COPY_KEEPS = ("git_commit", "parent")


def read_state(folder: Path) -> dict[str, Any]:
    """A folder's ``track.json`` (with a new uid if it has none yet; not written).

    ``folder`` records where the folder was when its state was written. A copy of a run
    folder (``cp -r runs/t1 runs/r1``, to extend the copy and keep the original) has its
    original's uid; used as is, a resume of the copy would take the original's store run
    over (rename it, append the copy's epochs). So when the recorded folder is elsewhere and
    still holds that uid, this folder is a copy: it gets a uid of its own, derived from the
    original's and its own path (the same on every read until it is written). A moved folder
    (the recorded one is gone) keeps its identity.
    """
    here = folder.resolve()
    state = _load_state(folder)
    recorded = state.get("folder")
    if recorded and Path(recorded) != here and _holds_uid(Path(recorded), state.get("uid")):
        derived = hashlib.sha256(f"{state['uid']} {here}".encode()).hexdigest()[:32]
        state = {k: state[k] for k in _COPY_KEEPS if k in state}
        state["uid"], state["copied_from"] = derived, recorded
    state.setdefault("uid", uuid.uuid4().hex)
    state["folder"] = str(here)
    return state


def _holds_uid(folder: Path, uid: Any) -> bool:
    """Whether ``folder`` still has a ``track.json`` with ``uid`` (the original of a copy)."""
    return bool(uid) and _load_state(folder).get("uid") == uid


# run folder (resolved) -> the track.json it had before it was started over (started_over)
_STARTED_OVER: dict[Path, dict[str, Any]] = {}


@contextmanager
def started_over(run_dir: Path) -> Iterator[None]:
    """Remove ``run_dir`` for a run trained again from its start into the same folder inside
    the block, keeping its tracking identity: the new run reads :func:`starting_state`.

    A study or tune run killed before its first checkpoint is trained anew, and its folder,
    ``track.json`` included, went with it; the store's run of the killed attempt stayed
    RUNNING beside a second run of the same name. With the same uid the store's run is the
    one continued, and it ends as the new attempt ends (epochs it already holds are trained
    again identically on CPU, as after ``train --resume``).
    """
    import shutil

    key = run_dir.resolve()
    kept = read_state(run_dir) if (run_dir / STATE).is_file() else None
    shutil.rmtree(run_dir)
    if kept is not None:
        _STARTED_OVER[key] = kept
    try:
        yield
    finally:
        _STARTED_OVER.pop(key, None)


def starting_state(run_dir: Path) -> dict[str, Any]:
    """The ``track.json`` state a run starts with: :func:`read_state`, or, for a folder just
    made anew inside :func:`started_over`, the one its earlier attempt had."""
    kept = _STARTED_OVER.get(run_dir.resolve())
    if kept is not None and not (run_dir / STATE).is_file():
        return dict(kept)
    return read_state(run_dir)


def write_state(folder: Path, state: dict[str, Any]) -> None:
    from cnnlab.runs import write_json

    write_json(folder / STATE, state)


def git_commit(folder: Path | None = None) -> str | None:
    """The commit checked out in ``folder`` (default: the working folder), if it is a git repo."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None
