"""Options that several commands share, defined once so their names and help agree."""

from __future__ import annotations

from typing import Any

import typer

TRACK_HELP = "auto | mlflow | wandb | none [default: auto: mlflow, or $CNNLAB_TRACK if set]"


def track_option() -> Any:
    """``--track``: where the runs are logged (``track.backend``); ``none`` turns it off."""
    return typer.Option(None, "--track", help=TRACK_HELP)


def tta_option() -> Any:
    """``--tta/--no-tta`` for eval and predict: the run's own choice unless given."""
    return typer.Option(
        None,
        "--tta/--no-tta",
        help="Average with the horizontally flipped image [default: as the run was evaluated,"
        " model.json's tta].",
        show_default=False,
    )


def overwrite_option() -> Any:
    """``--overwrite`` for the commands that write one file to ``--out`` (predict, export,
    lr-find): an existing file is refused without it (:func:`cnnlab.paths.check_writable_file`)."""
    return typer.Option(
        False, "--overwrite", help="Replace the --out file if it exists [default: refuse]."
    )
