"""Live tracking from the training process, without importing MLflow there.

A :class:`TrackingObserver` (the run observer ``fit`` uses unless ``track.backend=none``)
hands each event to a tracking process (:mod:`cnnlab.track.agent`) through a pipe: sending a
line takes microseconds, so training never waits for MLflow. One tracking process serves
every run of this process with the same destination (a study's cells share it), and it
finishes its work after training ends, even when this process exits first; call
:func:`flush` to wait for it. The process starts once this process has been sending for
``track.live_after`` seconds (from then on epochs appear live), when a lone run ends, when a
study or tune ends, or at :func:`flush` or exit, whichever is first: the runs of a study
that fits in ``live_after`` pay nothing for tracking until the study ends.

A tracking server that does not accept a connection when a session opens costs one warning
and no tracking process: nothing is logged to it by this command, and the run folders keep
everything for ``cnnlab track log``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from cnnlab.console import info, warn
from cnnlab.track.target import (
    DB_NAME,
    Target,
    local_db,
    locked,
    read_state,
    resolve_target,
    starting_state,
    unreachable,
    write_state,
)

DEBUG_ENV = "CNNLAB_TRACK_DEBUG"  # 1: the tracking process's own output reaches the console
# "PID URI": the process PID found the server URI down and said so; its worker processes
# (a study's --workers) inherit this and stay quiet about it
DOWN_ENV = "CNNLAB_TRACK_DOWN"
LATE_FD_ENV = "CNNLAB_TRACK_LATE_FD"  # the tracker's copy of this process's terminal
_SESSIONS: dict[Target, Session] = {}
_WARNED_DOWN: set[str] = set()  # servers this process has already warned about
WORKER_FLUSH_S = 1800.0  # seconds a worker process waits at exit for its tracker, at most


class Session:
    """One tracking process for one destination, started when it is first needed.

    Commands are queued in memory until then: a run shorter than ``track.live_after`` seconds
    is logged after it ends, so no second process shares the cores with its training
    (measured in bench/bench_overhead.py: a tracker importing MLflow beside a small model's
    training made that training ~3x slower, even at niceness 19).
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.seq = 0
        self.acked = 0
        self.closed = False
        self.cond = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.queued: list[str] = []  # commands sent before the process started
        self.first_sent: float | None = None  # monotonic time of the first command
        self.ended_runs: set[str] = set()  # run folders whose end this session was sent

    def start(self) -> None:
        """Start the tracking process (once) and hand it the queued commands."""
        with self.cond:
            if self.proc is not None or self.closed:
                return
            self.proc = _spawn(self.target)
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
            queued, self.queued = self.queued, []
            for line in queued:
                if not self._write(line):
                    break

    def start_if_due(self, live_after: float) -> None:
        """Start once the first command is ``live_after`` seconds old (a long run: go live)."""
        first = self.first_sent
        if self.proc is None and first is not None and time.monotonic() - first >= live_after:
            self.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "warn" in msg:
                warn(msg["warn"])
            with self.cond:
                self.acked = max(self.acked, int(msg.get("ack", 0)))
                self.cond.notify_all()
        with self.cond:
            if not self.closed:
                code = self.proc.poll() if self.proc is not None else None
                warn(
                    f"the tracking process stopped (exit {code}); training goes on; log the "
                    f"runs later with `cnnlab track log RUNS_DIR/*` (set {DEBUG_ENV}=1 to see why)"
                )
            self.closed = True
            self.cond.notify_all()

    def _write(self, line: str) -> bool:
        proc = self.proc
        if proc is None or proc.stdin is None:
            return False
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False  # the reader reports the stop once
        return True

    def send(self, op: str, **fields: Any) -> int:
        """Queue one command; returns its number (0 when the tracker is gone)."""
        with self.cond:
            if self.closed:
                return 0
            self.seq += 1
            if op == "sync" and fields.get("end"):
                self.ended_runs.add(str(Path(fields["run_dir"]).resolve()))
            line = json.dumps({"seq": self.seq, "op": op, **fields}) + "\n"
            if self.first_sent is None:
                self.first_sent = time.monotonic()
            if self.proc is None:
                self.queued.append(line)
            elif not self._write(line):
                return 0
            return self.seq

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every command sent so far is done; False on timeout."""
        if self.queued:
            self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            target = self.seq
            while self.acked < target and not self.closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def pending(self) -> bool:
        """Whether commands were sent that the tracker has not finished."""
        with self.cond:
            return not self.closed and self.acked < self.seq

    def close(self) -> None:
        """End the input; the tracker finishes what it has in the background."""
        if self.queued:
            self.start()  # this process is ending: the tracker logs what it was given
        with self.cond:
            self.closed = True
            if self.proc is not None and self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()

    def ended(self) -> bool:
        """Closed, and its process (if one ever started) has exited."""
        return self.closed and (self.proc is None or self.proc.poll() is not None)


def _spawn(target: Target) -> subprocess.Popen:
    """``python -m cnnlab.track.agent TARGET`` with this cnnlab importable."""
    import cnnlab

    env = dict(os.environ)
    src = Path(cnnlab.__file__).resolve().parents[1]
    if src.name not in ("site-packages", "dist-packages"):  # a source checkout: pass it on
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), _pythonpath()]))
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    # A warning the tracker has after this process has exited (it logs a lone run after
    # `cnnlab train` returned) still reaches a terminal: the tracker gets a copy of it. Never
    # a pipe: a reader of this command's output would wait for the tracker to end.
    late = os.dup(2) if not debug and _stderr_is_terminal() else None
    if late is not None:
        env[LATE_FD_ENV] = str(late)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cnnlab.track.agent", target.to_json()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if debug else subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            env=env,
            pass_fds=() if late is None else (late,),
            start_new_session=True,  # Ctrl-C stops training; the tracker records how it ended
        )
    finally:
        if late is not None:
            os.close(late)


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False


def _pythonpath() -> str:
    return os.environ.get("PYTHONPATH", "")


def session_for(target: Target, runs: str = "RUNS_DIR") -> Session:
    """The tracking process for ``target`` (started on first use).

    A server that does not accept a connection gets a session that sends nothing, and one
    warning per process naming ``runs`` (the folder to log later) instead of a tracker that
    would retry after the command has returned.
    """
    session = _SESSIONS.get(target)
    if session is None or session.ended():
        session = _SESSIONS[target] = Session(target)
        why = unreachable(target.uri) if target.backend == "mlflow" else None
        if why is None:
            info(f"tracking: {_where(target)}")
        else:
            session.closed = True  # nothing is queued, no process starts
            _warn_down(target, why, runs)
    return session


def _warn_down(target: Target, why: str, runs: str) -> None:
    pid, _, uri = os.environ.get(DOWN_ENV, "").partition(" ")
    if target.uri in _WARNED_DOWN or (uri == target.uri and pid != str(os.getpid())):
        return  # said once by this process, or by the process that started this worker
    _WARNED_DOWN.add(target.uri)
    os.environ[DOWN_ENV] = f"{os.getpid()} {target.uri}"
    warn(
        f"cannot reach the MLflow server {target.uri} ({why}): this command logs nothing "
        f"there, the run folders keep everything; once it is up, run `cnnlab track log {runs}`"
    )


def _where(target: Target) -> str:
    if target.backend == "wandb":
        return (
            f"W&B project {target.experiment}, offline in {target.uri}/wandb "
            "(upload with `wandb sync`)"
        )
    db = local_db(target)
    hint = ""
    if db is not None and db.name == DB_NAME:  # `cnnlab ui --runs-dir` names the folder
        where = "" if db.parent == Path("runs").resolve() else f" --runs-dir {db.parent}"
        hint = f"; browse with `cnnlab ui{where}`"
    return f"MLflow {target.uri} (experiment {target.experiment}){hint}"


def flush(timeout: float | None = None) -> bool:
    """Wait until every run logged so far by this process is in its tracking store.

    Example:
        >>> run = cnnlab.train("data/")      # doctest: +SKIP
        >>> cnnlab.track.flush()             # doctest: +SKIP
    """
    return all(s.flush(timeout) for s in list(_SESSIONS.values()))


@atexit.register
def _close_all() -> None:
    from cnnlab.track.parents import PARENT_ENV

    if os.environ.get(PARENT_ENV):
        # A worker of a study or tune: the process that opened the parent tags and logs after
        # its workers end, so a worker's runs must be in the store when it has ended.
        flush(WORKER_FLUSH_S)
    for session in _SESSIONS.values():
        session.close()


class TrackingObserver:
    """The run observer that logs a run live (see :mod:`cnnlab.engine.observe`)."""

    def __init__(self, track: Any) -> None:
        self.track = track  # TrackConfig
        self.sessions: dict[Path, Session] = {}

    def run_started(self, run_dir: Path) -> None:
        from cnnlab.track.parents import current_parent

        # The default store sits in the folder that holds the run, as for `track log`.
        target = resolve_target(self.track, run_dir.parent)
        if target is None:
            return
        with locked(run_dir):
            state = starting_state(run_dir)  # a run started over keeps its store run
            state.setdefault("git_commit", _git_commit())
            if (parent := current_parent()) is not None and parent.info is not None:
                state["parent"] = parent.info
            for key in ("end", "logged"):  # a resumed run trains again: it ends anew
                state.pop(key, None)
            write_state(run_dir, state)
        self.sessions[run_dir] = session = session_for(target, str(run_dir))
        session.send("sync", run_dir=str(run_dir))

    def epoch_ended(self, run_dir: Path, epoch: int) -> None:
        if run_dir in self.sessions:
            session = self.sessions[run_dir]
            session.send("sync", run_dir=str(run_dir))
            session.start_if_due(self.track.live_after)

    def run_ended(self, run_dir: Path, status: str) -> None:
        if run_dir not in self.sessions:
            return
        from cnnlab.evaluation.background import deferring, when_all_drawn, when_drawn

        session = self.sessions.pop(run_dir)
        live_after = self.track.live_after
        with locked(run_dir):  # how it ended outlives this process (a study killed later)
            state = read_state(run_dir)
            state["end"] = status
            write_state(run_dir, state)

        def end() -> None:
            session.send("sync", run_dir=str(run_dir), end=status)
            if deferring():  # a study's or tune's next run follows in this process
                session.start_if_due(live_after)
                when_all_drawn(session.start)  # at the latest when the study ends
            else:
                session.start()

        when_drawn(run_dir, end)  # the report and plots are logged with the run's end


def _git_commit() -> str | None:
    from cnnlab.track.target import git_commit

    return git_commit()
