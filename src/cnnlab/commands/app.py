"""``cnnlab app``: the web app (Streamlit) over a runs folder, dataset, study and tune folders."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.paths import expand_home


def app_command(
    folders: list[Path] = typer.Argument(
        None,
        help="Dataset folders the Data page may open, and study or tune folders (or folders "
        "holding several) the Studies and tuning page may show (none: only the runs folder).",
        callback=expand_home,
    ),
    runs_dir: str = typer.Option(
        "runs", "--runs-dir", help="Folder holding run folders.", callback=expand_home
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (this machine only)."),
    port: int = typer.Option(8501, help="Port (another free one if taken)."),
    max_upload_mb: int = typer.Option(10, "--max-upload-mb", help="Largest upload, in MB."),
) -> None:
    """Open the web app: predict, browse and compare runs, studies and tunes, inspect data
    (Ctrl-C to stop).

    Example:

        cnnlab app data/flowers studies/ tunes/cnn --runs-dir runs --port 8501
    """
    from cnnlab.app.serve import serve_app

    raise typer.Exit(serve_app(runs_dir, list(folders or []), host, port, max_upload_mb))
