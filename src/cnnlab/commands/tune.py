"""``cnnlab tune``: a hyperparameter search with Optuna, resumable, on one or many workers."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from cnnlab.commands.options import track_option
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.paths import expand_home


def tune_command(
    data: str = typer.Argument(
        None, help="Dataset folder or CSV manifest (or `report DIR`).", callback=expand_home
    ),
    overrides: list[str] = typer.Argument(
        None,
        help="Values every trial shares, KEY=VALUE, e.g. data.img_size=32",
        callback=expand_home,
    ),
    space: str = typer.Option(
        "cnn",
        "--space",
        "-s",
        help="cnn | train | transfer | head | FILE.yaml",
        callback=expand_home,
    ),
    trials: int = typer.Option(
        20, "--trials", "-n", help="Trials in total, over every run and worker."
    ),
    timeout: float = typer.Option(None, "--timeout", help="Start no new trial after S seconds."),
    epochs: int = typer.Option(3, "--epochs", "-e", help="Epochs per trial."),
    objective: str = typer.Option(
        "val/macro_f1", "--objective", help="val/macro_f1 | val/accuracy, optionally ,params"
    ),
    sampler: str = typer.Option(None, "--sampler", help="tpe | random | cmaes | nsga2 | grid"),
    pruner: str = typer.Option(None, "--pruner", help="median | hyperband | none"),
    target: float = typer.Option(None, "--target", help="With ,params: the accuracy to reach."),
    storage: str = typer.Option(
        None, "--storage", help="Optuna storage shared by machines, e.g. postgresql://..."
    ),
    study: str = typer.Option(None, "--study", help="The study's name in the storage."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Tune folder [default: tunes/SPACE].", callback=expand_home
    ),
    workers: int = typer.Option(1, "--workers", "-w", help="Trials side by side on this machine."),
    retrain_best: bool = typer.Option(
        False, "--retrain-best", help="Then train the best config over --seeds seeds (a study)."
    ),
    seeds: int = typer.Option(3, "--seeds", help="Seeds for --retrain-best."),
    track: str = track_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    """Search hyperparameters with Optuna; run the same command again to continue.

    Examples:

        cnnlab tune data/ --space cnn --trials 30 --epochs 5

        cnnlab tune data/ --objective val/accuracy,params --target 0.9

        cnnlab tune data/ --space head --trials 100 --retrain-best --seeds 3

        cnnlab tune report tunes/cnn
    """
    from cnnlab.api import short_values
    from cnnlab.console import set_quiet
    from cnnlab.studies.plan import parse_sets, seed_list
    from cnnlab.tuning.retrain import retrain_best as retrain
    from cnnlab.tuning.tune import make_settings, report_tune, run_tune

    if quiet:
        set_quiet(True)
    if data == "report":
        if track is not None:
            raise ConfigError(
                "--track is chosen when a tune starts (tune.yaml keeps it); report uses it"
            )
        if not overrides or len(overrides) != 1:
            raise CnnlabError("usage: cnnlab tune report TUNE_FOLDER")
        report_tune(Path(overrides[0]), storage)
        return
    if data is None:
        raise CnnlabError("tune needs a DATA folder (or report DIR)")
    command = "cnnlab " + " ".join(shlex.quote(a) for a in _without_secrets(sys.argv[1:]))
    sets = [f"track.backend={track}"] if track is not None else []  # KEY=VALUE wins, as in train
    settings = make_settings(
        data, space, trials, epochs, objective, sampler, pruner,
        short_values(parse_sets([*sets, *(overrides or [])])),
        study=study or "", timeout_s=timeout, target=target, command=command,
    )  # fmt: skip
    if retrain_best:
        seed_list(seeds, 0)  # a bad --seeds is refused before the tune changes anything
    tuning = run_tune(settings, out, storage, workers)
    if retrain_best:
        retrain(tuning.path, seeds)


def _without_secrets(argv: list[str]) -> list[str]:
    from cnnlab.commands.study import _without_secrets as hide

    return hide(argv)
