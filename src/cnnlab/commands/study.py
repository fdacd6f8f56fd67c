"""``cnnlab study``: many runs compared honestly, and ``cnnlab study report DIR``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from cnnlab.commands.options import track_option
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.paths import expand_home


def study_command(
    data: str = typer.Argument(
        None,
        help="Dataset folder or CSV manifest (or `report` followed by a study folder).",
        callback=expand_home,
    ),
    overrides: list[str] = typer.Argument(
        None, help="Values every cell shares, KEY=VALUE, e.g. train.epochs=10", callback=expand_home
    ),
    vary: list[str] = typer.Option(
        None, "--vary", "-v", help="KEY=V1,V2,... ; several --vary make a cross product."
    ),
    seeds: int = typer.Option(None, "--seeds", help="Training seeds per cell [default: 3]."),
    recipe: str = typer.Option(
        None, "--recipe", "-r", help="lr | optimizers | models | transfer | ladder"
    ),
    plan: Path = typer.Option(
        None, "--plan", help="YAML file listing the cells.", callback=expand_home
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Study folder [default: studies/...].", callback=expand_home
    ),
    resume: Path = typer.Option(
        None, "--resume", help="Continue (or join) a study folder.", callback=expand_home
    ),
    workers: int = typer.Option(1, "--workers", "-w", help="Runs side by side on this machine."),
    storage: str = typer.Option(
        None, "--storage", help="Optuna storage shared by machines, e.g. postgresql://..."
    ),
    track: str = track_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    """Compare settings over several seeds on one split; say which differences are real.

    Examples:

        cnnlab study data/ --vary train.lr=1e-3,1e-2 --vary train.scheduler=onecycle,none

        cnnlab study data/ --recipe transfer --seeds 5 train.epochs=10

        cnnlab study --resume studies/lr-20250101-120000

        cnnlab study report studies/lr-20250101-120000
    """
    from cnnlab.console import set_quiet
    from cnnlab.studies.study import make_plan, report_study, resume_study, run_study

    if quiet:
        set_quiet(True)
    if track is not None and (resume is not None or data == "report"):
        raise ConfigError(
            "--track is chosen when a study starts (study.yaml keeps it); "
            "--resume and report go on as it began"
        )
    if data == "report":  # `cnnlab study report DIR` (a dataset named report: ./report)
        if not overrides or len(overrides) != 1:
            raise CnnlabError("usage: cnnlab study report STUDY_FOLDER")
        report_study(Path(overrides[0]))
        return
    if resume is not None:
        resume_study(resume, workers=workers, storage=storage)
        return
    if data is None:
        raise CnnlabError("study needs a DATA folder (or --resume DIR, or report DIR)")
    command = "cnnlab " + " ".join(shlex.quote(a) for a in _without_secrets(sys.argv[1:]))
    sets = [f"track.backend={track}"] if track is not None else []  # KEY=VALUE wins, as in train
    spec = make_plan(data, vary, seeds, recipe, plan, [*sets, *(overrides or [])], command)
    run_study(spec, out, workers, storage)


def _without_secrets(argv: list[str]) -> list[str]:
    """The command line as saved in study.yaml: a --storage password is hidden."""
    from cnnlab.schedule.storage import redact

    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            arg, hide_next = redact(arg), False
        elif arg == "--storage":
            hide_next = True
        elif arg.startswith("--storage="):
            arg = "--storage=" + redact(arg.split("=", 1)[1])
        out.append(arg)
    return out
