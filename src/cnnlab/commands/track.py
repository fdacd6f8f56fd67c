"""``cnnlab track log``, ``cnnlab track register`` and ``cnnlab ui``: thin shells over
:mod:`cnnlab.track`; MLflow is imported inside each command, never by ``cnnlab --help``."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.paths import expand_home

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _split(items: list[str]) -> tuple[list[str], list[str]]:
    """Run folders and ``track.KEY=VALUE`` overrides, given in any order."""
    overrides = [i for i in items if "=" in i and not Path(i).exists()]
    return [i for i in items if i not in overrides], overrides


@app.command("log")
def log_command(
    items: list[str] = typer.Argument(
        ...,
        help="Run folders (or folders of runs), then optional track.uri=URI etc.",
        callback=expand_home,
    ),
) -> None:
    """Log finished run folders to MLflow or W&B (again): only what the store lacks is sent.

    Example:

        cnnlab track log runs/cnn-scratch runs/resnet18-frozen track.uri=http://mlflow:5000
    """
    from cnnlab.track.target import quiet_libraries

    quiet_libraries()  # before MLflow is imported: its chatter stays off the console
    from cnnlab.console import result
    from cnnlab.track.sync import log_runs

    paths, overrides = _split(items)
    for run_dir, report in log_runs(paths, overrides):
        what = "created" if report.created else "updated"
        if not (report.created or report.values or report.params or report.files):
            what = "up to date"
        result(
            f"{run_dir}: {what} ({report.store} run {report.run_id}; {report.values} metric "
            f"values, {report.params} params, {report.files} files sent)"
        )


@app.command("register")
def register_command(
    run: Path = typer.Argument(..., help="A finished run folder.", callback=expand_home),
    name: str = typer.Option(..., "--name", "-n", help="Registered model name."),
    overrides: list[str] = typer.Argument(None, help="track.uri=URI, track.experiment=NAME"),
) -> None:
    """Register a run's model in MLflow; its pyfunc predicts exactly as `cnnlab predict`.

    Example:

        cnnlab track register runs/cnn-scratch --name flowers
    """
    from cnnlab.track.target import quiet_libraries

    quiet_libraries()  # before MLflow is imported: its chatter stays off the console
    from cnnlab.console import result
    from cnnlab.track.pyfunc import register_run

    version, uri, created = register_run(run, name, overrides or [])
    what = "registered" if created else "already registered (the same weights):"
    result(f"{what} {name} version {version}: load it with mlflow.pyfunc.load_model('{uri}')")


def ui_command(
    runs_dir: str = typer.Option(
        "runs", "--runs-dir", help="Folder holding runs and mlflow.db.", callback=expand_home
    ),
    port: int = typer.Option(5000, help="Port (another free one if taken)."),
) -> None:
    """Open the MLflow UI on the runs folder's tracking store (this machine only).

    Example:

        cnnlab ui --runs-dir runs
    """
    from cnnlab.track.ui import serve_ui

    raise typer.Exit(serve_ui(runs_dir, port))
