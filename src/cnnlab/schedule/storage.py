"""Optuna storage for studies and tunes: a SQLite file by default, PostgreSQL for many machines.

Example:
    >>> storage = open_storage(storage_url(None, Path("studies/lr")))  # doctest: +SKIP
    >>> study = open_study("lr", storage, GridSampler({"job": [0, 1, 2]}))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.errors import CnnlabError, ConfigError

if TYPE_CHECKING:
    import optuna

DEFAULT_DB = "schedule.db"  # the SQLite file inside the output folder
HEARTBEAT_S = 10  # a running trial writes a heartbeat this often (s)
GRACE_S = 60  # a trial silent this long (s) belongs to a dead worker and is queued again
MAX_RETRIES = 3  # a run whose worker keeps dying is given up after this many new starts
LOCK_TIMEOUT_S = 120  # SQLite: how long a writer waits for another process's lock (s)
_OPEN_ATTEMPTS = 5  # tries to open a storage whose tables another worker is creating


def storage_url(url: str | None, folder: Path) -> str:
    """The storage URL: ``url`` when given, else a SQLite file inside ``folder``."""
    if url:
        if "://" not in url:
            raise ConfigError(
                f"--storage {url!r} is not a database URL; use e.g. "
                "postgresql://user:password@host/db or sqlite:///path/file.db"
            )
        return _postgres_driver(url)
    return f"sqlite:///{(Path(folder) / DEFAULT_DB).resolve()}"


def _postgres_driver(url: str) -> str:
    """Name the installed PostgreSQL driver: SQLAlchemy 2.1 assumes psycopg 3 for a bare
    ``postgresql://``, while ``cnnlab[postgres]`` installs psycopg2."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def redact(url: str) -> str:
    """The URL with its password hidden, for files and messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show nothing that could be a secret
        return url.split("://", 1)[0] + "://..."


def quiet_optuna() -> None:
    """Optuna logs a line per trial (and a warning per failed one) and warns about
    experimental features; cnnlab reports progress and failures itself."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so trials of killed workers are detected and retried.

    A running trial records a heartbeat every ``HEARTBEAT_S`` seconds; one silent for
    ``GRACE_S`` is marked failed by the next worker that looks, and Optuna's
    ``RetryHeartbeatStaleTrialCallback`` queues a copy with the same parameters (and grid
    point) that any worker then picks up.

    Raises:
        ConfigError: the database cannot be reached or its driver is missing.
    """
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    quiet_optuna()
    engine: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine["connect_args"] = {"timeout": LOCK_TIMEOUT_S}
    else:
        engine["pool_pre_ping"] = True  # a server connection may drop during a long run
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRIES
                ),
            )
        except ImportError as exc:
            raise ConfigError(
                f"storage {redact(url)}: database driver missing ({exc}); for PostgreSQL "
                "install it with: pip install 'cnnlab[postgres]'"
            ) from None
        except Exception as exc:  # unreachable server, or workers creating the tables at once
            if attempt == _OPEN_ATTEMPTS - 1 or not _schema_race(exc):
                raise ConfigError(f"storage {redact(url)}: cannot connect ({exc})") from None
            time.sleep(0.5 + random.random())  # another worker is creating the schema
    raise AssertionError("unreachable")


def _schema_race(exc: Exception) -> bool:
    """Whether an error comes from two workers creating the storage's tables at once."""
    from sqlalchemy.exc import IntegrityError

    return isinstance(exc, IntegrityError) or "already exists" in str(exc)


def open_study(
    name: str,
    storage: optuna.storages.BaseStorage,
    sampler: optuna.samplers.BaseSampler,
    direction: str | list[str] = "maximize",
) -> optuna.Study:
    """Create the named study in the storage, or join it when another worker already did.

    ``direction`` is one direction, or a list of them for a multi-objective study.
    """
    import optuna

    many = {"directions": direction} if isinstance(direction, list) else {"direction": direction}
    return optuna.create_study(
        study_name=name, storage=storage, sampler=sampler, load_if_exists=True, **many
    )


# A worker's exit status when it lost its storage (BSD's EX_TEMPFAIL: try again later).
STORAGE_LOST_EXIT = 75


class StorageLost(CnnlabError):
    """The storage stopped answering during the work: finished trials and runs are kept."""


def storage_error(exc: BaseException) -> BaseException | None:
    """The database error behind ``exc`` (its causes and contexts included), or None.

    A lost server surfaces as SQLAlchemy's ``OperationalError`` (or a closed connection's
    ``InterfaceError``), often wrapped in Optuna's ``StorageInternalError`` and then hidden
    behind an error Optuna raises while cleaning up (an ``UnboundLocalError`` in its
    ``_tell``).
    """
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    found: BaseException | None = None
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, OperationalError | InterfaceError | DisconnectionError):
            return item  # the most telling: the driver's own words
        if isinstance(item, StorageInternalError | StorageLost):
            found = found or item
        todo += [e for e in (item.__cause__, item.__context__) if e is not None]
    return found


def lost_storage(
    url: str, exc: BaseException, kept: str = "trials", again: str = "run the same command"
) -> StorageLost:
    """The one-line error for a storage that stopped answering: what is kept (a tune's
    ``trials``, a study's ``runs``) and how to go on once it answers."""
    from cnnlab.errors import brief

    cause = storage_error(exc) or exc
    reason = str(getattr(cause, "orig", None) or cause).strip()
    return StorageLost(
        f"storage {redact(url)}: lost the connection ({brief(reason, 160)}); the finished "
        f"{kept} are kept: once the database answers again, {again} to continue"
    )


@contextlib.contextmanager
def quiet_storage_threads() -> Iterator[None]:
    """Optuna's heartbeat thread raises when the database goes away, and Python prints its
    traceback; the main thread meets the same error and reports it once."""
    import threading

    before = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or storage_error(args.exc_value) is None:
            before(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = before
