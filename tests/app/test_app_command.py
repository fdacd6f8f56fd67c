"""``cnnlab app`` as a user starts it: settings, folder access, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.app.serve import app_command_line
from cnnlab.app.settings import AccessError, AppSettings, load_settings


def test_only_the_runs_folder_and_given_folders_are_browsable(tmp_path: Path) -> None:
    runs, data = tmp_path / "runs", tmp_path / "data"
    (runs / "a").mkdir(parents=True)
    (data / "cats").mkdir(parents=True)
    settings = AppSettings(runs_dir=runs.resolve(), folders=(data.resolve(),))
    assert settings.check_folder(runs / "a") == (runs / "a").resolve()
    assert settings.check_folder(data / "cats" / "..") == data.resolve()
    for outside in (tmp_path, runs / ".." / "elsewhere", Path("/etc")):
        with pytest.raises(AccessError) as info:
            settings.check_folder(outside)
        assert str(tmp_path) not in str(info.value)  # never echo server paths


def test_settings_travel_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AppSettings(tmp_path / "r", (tmp_path / "d1", tmp_path / "d 2"), 3)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert load_settings() == settings


def test_server_options_are_the_safe_ones() -> None:
    argv = app_command_line("127.0.0.1", 8600, 7)
    opts = dict(zip(argv[5::2], argv[6::2], strict=True))
    assert opts["--server.address"] == "127.0.0.1"
    assert opts["--server.maxUploadSize"] == "7"  # MB, far below Streamlit's 200
    assert opts["--client.showErrorDetails"] == "none"
    assert opts["--browser.gatherUsageStats"] == "false"


def test_a_missing_data_folder_is_a_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnlab",
            "app",
            str(tmp_path / "nope"),
            "--runs-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not a folder" in proc.stderr


@pytest.mark.slow
def test_two_apps_at_once_each_serve_the_port_they_announce(tmp_path: Path) -> None:
    """Both used to check that the port was free and announce it; the second server then
    died with "address already in use" while its command kept saying where to browse."""
    import os

    from tests.track.track_helpers import assert_each_serves_what_it_announced, free_port

    port = free_port()
    (tmp_path / "runs").mkdir()
    env = dict(os.environ, CNNLAB_CACHE=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "cnnlab", "app", "--runs-dir", str(tmp_path / "runs"),
            "--port", str(port)]  # fmt: skip
    procs = [
        subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    try:
        assert_each_serves_what_it_announced(procs, port, "/_stcore/health")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
