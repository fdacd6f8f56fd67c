"""``cnnlab ui``: the MLflow UI on the embedded store of a runs folder, on this machine only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cnnlab.console import result
from cnnlab.errors import CnnlabError
from cnnlab.track.target import ARTIFACTS_NAME, DB_NAME, default_uri

HOST = "127.0.0.1"  # localhost only: the store may hold paths and data a user keeps private


def free_port(preferred: int, host: str = HOST) -> int:
    """``preferred`` when nothing listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise CnnlabError("no free port for the UI")


def ui_command_line(runs_dir: str | Path, port: int) -> list[str]:
    """The ``mlflow server`` command for a runs folder's store."""
    runs_dir = Path(runs_dir).resolve()
    if not (runs_dir / DB_NAME).is_file():
        raise CnnlabError(
            f"{runs_dir / DB_NAME}: no tracking store yet; train a run first "
            "(tracking is on by default), or pass --runs-dir"
        )
    store = default_uri(runs_dir)
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", store, "--registry-store-uri", store,
        "--default-artifact-root", (runs_dir / ARTIFACTS_NAME).as_uri(),
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--uvicorn-opts", "--log-level warning",  # no line per request, no startup banner
    ]  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_ui(runs_dir: str | Path = "runs", port: int = 5000) -> int:
    """Run the MLflow UI in the foreground until Ctrl-C (or SIGTERM); returns its exit status.

    The address is announced once the server listens on it: a port free when checked can be
    taken before the server binds it (two ``cnnlab ui`` at once both chose 5000, and the
    second server died), so the UIs of this machine choose and bind one at a time, and a
    server that could not bind is started again on another port.
    """
    store = ui_command_line(runs_dir, port)[5]  # no store: an error before anything starts
    # MLflow's job runner serves GenAI jobs, not this UI: it would add a dozen processes.
    # Python warnings of the server's libraries (a Starlette deprecation) tell a user nothing.
    quiet = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PYTHONWARNINGS": "ignore"}
    return serve_when_listening(
        lambda p: ui_command_line(runs_dir, p),
        port,
        {**quiet, **os.environ},
        lambda p: result(f"MLflow UI: http://{HOST}:{p}  (store {store}; Ctrl-C to stop)"),
    )


def serve_when_listening(
    argv_for: Callable[[int], list[str]],
    port: int,
    env: dict[str, str],
    announce: Callable[[int], None],
    host: str = HOST,
) -> int:
    """Start a server on ``port`` (or another free one), ``announce`` the port it listens on,
    and run it in the foreground until it exits, Ctrl-C or SIGTERM; returns its exit status.

    ``cnnlab ui`` and ``cnnlab app`` use it: a port free when checked can be taken before the
    server binds it (two servers started at once both chose the same port, and the second
    died while its command kept saying where to browse), so the servers of this machine
    choose and bind one at a time, and one that could not bind is started on another port.
    """
    from filelock import FileLock

    from cnnlab.paths import cache_dir

    previous = signal.signal(signal.SIGTERM, _interrupt)  # a kill while it starts, too
    try:
        with FileLock(str(cache_dir("locks") / "server-port.lock"), timeout=2 * STARTUP_S):
            proc, port = _start_listening(argv_for, port, env, host)
        announce(port)
        return _wait_foreground(proc)
    finally:
        signal.signal(signal.SIGTERM, previous)


STARTUP_S = 300.0  # an MLflow server listens after ~10 s idle, far later on a busy machine


def _start_listening(
    argv_for: Callable[[int], list[str]], port: int, env: dict[str, str], host: str
) -> tuple[subprocess.Popen, int]:
    """A server started on ``port`` (or another free one) once it accepts connections."""
    port = free_port(port, host)
    for _ in range(5):
        # its output to stderr: stdout's first line is the address, once it is served
        proc = subprocess.Popen(argv_for(port), env=env, start_new_session=True, stdout=2)
        try:
            if _listens(proc, host, port):
                return proc, port
        except BaseException:  # Ctrl-C while it starts: no server left behind
            _stop_group(proc)
            raise
        _stop_group(proc)
        taken, port = port, free_port(port, host)
        if port == taken:  # the port is free: the server failed for another reason (above)
            raise CnnlabError(f"the server stopped while starting (exit {proc.returncode})")
    raise CnnlabError("the server found no free port to listen on")


def _listens(proc: subprocess.Popen, host: str, port: int) -> bool:
    """True once ``port`` accepts connections (after ``STARTUP_S``, if it is still alive);
    False if the server exits first."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as sock:
            sock.settimeout(1.0)
            if sock.connect_ex((host, port)) == 0:
                return proc.poll() is None
        time.sleep(0.2)
    return proc.poll() is None


def _wait_foreground(proc: subprocess.Popen) -> int:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
