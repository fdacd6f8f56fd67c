"""``cnnlab ui``: the MLflow UI on the embedded store of a runs folder, on this machine only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
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
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", default_uri(runs_dir),
        "--default-artifact-root", (runs_dir / ARTIFACTS_NAME).as_uri(),
        "--host", HOST, "--port", str(port), "--workers", "1",
    ]  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_ui(runs_dir: str | Path = "runs", port: int = 5000) -> int:
    """Run the MLflow UI in the foreground until Ctrl-C (or SIGTERM); returns its exit status."""
    port = free_port(port)
    argv = ui_command_line(runs_dir, port)
    result(f"MLflow UI: http://{HOST}:{port}  (store {argv[5]}; Ctrl-C to stop)")
    # MLflow's job runner serves GenAI jobs, not this UI: it would add a dozen processes.
    return run_foreground(argv, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ})


def run_foreground(argv: list[str], env: dict[str, str]) -> int:
    """Run a server command until it exits, Ctrl-C or SIGTERM; returns its exit status.

    The server runs in its own process group, stopped whole on the way out: servers start
    worker processes that would otherwise outlive this command.
    """
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
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
