"""Helpers for the real-browser tests: start ``cnnlab app`` on a free port, launch Chromium.

A missing Chromium or Playwright fails the test with the command that installs it; it never
skips (``make test`` runs scripts/system_deps.sh, which installs Chromium as root).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 90  # the server imports streamlit; a busy 2-core machine is slow
INSTALL_CHROMIUM = (
    "Chromium is missing: install it with `sudo apt-get install -y chromium` "
    "(or run scripts/system_deps.sh as root)"
)
INSTALL_PLAYWRIGHT = "Playwright is missing: install it with `pip install -e '.[dev]'`"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"cnnlab app exited with {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/_stcore/health", timeout=2) as resp,
        ):
            if resp.status == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"cnnlab app did not answer at {url} within {START_TIMEOUT_S} s")


@contextlib.contextmanager
def running_app(runs: Path, *folders: Path, log: Path) -> Iterator[str]:
    """``cnnlab app`` in a subprocess, as a user starts it; yields the address it printed."""
    port = _free_port()
    argv = [sys.executable, "-m", "cnnlab", "app", *map(str, folders)]
    argv += ["--runs-dir", str(runs), "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url)
        deadline = time.monotonic() + 30  # announced once served: a moment after it answers
        while not (printed := re.search(r"cnnlab app: (http://\S+)", log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert printed.group(1) == url, log.read_text()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)  # cnnlab app stops its server's process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def chromium_options() -> dict:
    """``launch`` options for Debian's Chromium (headless, no sandbox: tests run as root)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(INSTALL_CHROMIUM)
    return {"executable_path": CHROMIUM, "args": ["--no-sandbox"], "headless": True}


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail(INSTALL_PLAYWRIGHT)
    return start()
