"""Helpers for the tracking tests: a real `mlflow server` process and store queries."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER_START_S = 300  # an MLflow server takes ~10 s idle, far more on a busy 2-core machine


def cnnlab_cli(*args: str) -> subprocess.CompletedProcess:
    """``cnnlab ARGS`` in a fresh process, with tracking at its default (no ``CNNLAB_TRACK``)."""
    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_TRACK"}
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args],
        capture_output=True, text=True, timeout=900, env={**env, "COLUMNS": "200"},
    )  # fmt: skip


def assert_each_serves_what_it_announced(
    procs: list[subprocess.Popen], port: int, health: str
) -> None:
    """Servers started at once on ``port``: each printed a different address first, one of
    them ``port``, and each still answers ``health`` there a moment later (a server that
    lost its port would have died by then)."""
    import re

    announced = []
    for proc in procs:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found, f"no address announced: {line!r} (exit {proc.poll()})"
        announced.append(int(found.group(1)))
    assert port in announced and len(set(announced)) == len(procs), announced
    time.sleep(2)
    for proc, at in zip(procs, announced, strict=True):
        assert proc.poll() is None, f"the server on {at} exited with {proc.returncode}"
        with urllib.request.urlopen(f"http://127.0.0.1:{at}{health}", timeout=30) as resp:
            assert resp.status == 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = SERVER_START_S) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail(f"no answer from {url} after {timeout:.0f} s")


@dataclass
class Server:
    """A real `mlflow server` on a free loopback port, over a SQLite file in a temp folder."""

    folder: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.port = free_port()
        log = (self.folder / f"server-{self.port}.log").open("w")
        argv = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", "sqlite:///" + (self.folder / "server.db").as_posix(),
            "--artifacts-destination", (self.folder / "artifacts").as_posix(),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        # its own process group: the server's uvicorn worker is a child that must die with it;
        # MLflow's GenAI job runner (a dozen more processes) plays no part in tracking
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        wait_http(self.uri + "/health", self.proc)
        return self

    def kill(self) -> None:
        """Stop the server at once (as a crash would), with every worker it started."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        # the worker may take a moment to go; wait until the port is closed
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.2)


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(uri: str, experiment: str = "cnnlab", must_exist: bool = True) -> list[Any]:
    """Every run of an experiment, oldest first."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None and not must_exist:
        return []
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    return sorted(c.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """A metric's (step, value) pairs, in step order."""
    return sorted((m.step, m.value) for m in client(uri).get_metric_history(run_id, key))


def artifact_paths(uri: str, run_id: str) -> set[str]:
    c = client(uri)
    found = set()
    for top in c.list_artifacts(run_id):
        if top.is_dir:
            found |= {a.path for a in c.list_artifacts(run_id, top.path)}
        else:
            found.add(top.path)
    return found
