"""Start the Streamlit server for ``cnnlab app`` with cnnlab's safety settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cnnlab.app.settings import AppSettings
from cnnlab.console import result
from cnnlab.errors import CnnlabError

MAIN = Path(__file__).with_name("main.py")


def app_command_line(host: str, port: int, max_upload_mb: int) -> list[str]:
    """``streamlit run`` with the options that keep a shared app safe and quiet.

    Uploads are capped well below Streamlit's 200 MB default, error details (tracebacks,
    server paths) never reach the browser, and nothing is sent home or watched for edits.
    """
    return [
        sys.executable, "-m", "streamlit", "run", str(MAIN),
        "--server.address", host, "--server.port", str(port),
        "--server.headless", "true",
        "--server.maxUploadSize", str(max_upload_mb),
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "viewer",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
    ]  # fmt: skip


def check_folders(runs_dir: str | Path, folders: list[str | Path]) -> AppSettings:
    """Resolved settings; a dataset folder that is not a folder is an error now, not later."""
    for folder in folders:
        if not Path(folder).is_dir():
            raise CnnlabError(f"{folder}: not a folder (give dataset folders to browse)")
    return AppSettings(
        runs_dir=Path(runs_dir).resolve(),
        folders=tuple(Path(f).resolve() for f in folders),
    )


def serve_app(
    runs_dir: str | Path = "runs",
    folders: list[str | Path] | None = None,
    host: str = "127.0.0.1",
    port: int = 8501,
    max_upload_mb: int = 10,
) -> int:
    """Run the app in the foreground until Ctrl-C; prints its address once it is served
    (:func:`~cnnlab.track.ui.serve_when_listening`); returns the exit code."""
    from cnnlab.track.ui import serve_when_listening

    if max_upload_mb < 1:
        raise CnnlabError("--max-upload-mb must be at least 1")
    settings = check_folders(runs_dir, list(folders or []))
    settings = AppSettings(settings.runs_dir, settings.folders, max_upload_mb)
    runs = settings.runs_dir
    return serve_when_listening(
        lambda p: app_command_line(host, p, max_upload_mb),
        port,
        {**os.environ, **settings.to_env()},
        lambda p: result(f"cnnlab app: http://{host}:{p}  (runs {runs}; Ctrl-C to stop)"),
        host,
    )
