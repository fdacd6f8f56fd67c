"""``cnnlab ensemble``: a thin shell over :mod:`cnnlab.ensemble`."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnlab.paths import expand_home


def ensemble_command(
    runs: list[Path] = typer.Argument(
        None, help="Member run folders (two or more).", callback=expand_home
    ),
    method: str = typer.Option("soft", help="soft | hard | weighted | greedy (fitted on val)"),
    out: Path = typer.Option(
        None, "--out", "-o", help="Ensemble folder [default: runs/ensemble-*]", callback=expand_home
    ),
    runs_dir: Path = typer.Option(
        None,
        "--runs-dir",
        help="Where the default folder goes [default: runs; beside the dataset when run from"
        " inside it].",
        show_default=False,
        callback=expand_home,
    ),
    from_study: Path = typer.Option(
        None, "--from-study", help="Take members from a study folder.", callback=expand_home
    ),
    top: int = typer.Option(3, "--top", help="With --from-study: the K best cells (by val)."),
) -> None:
    """Combine finished runs into an ensemble folder that predicts, evaluates and reports like one.

    Example:

        cnnlab ensemble runs/cnn runs/effnet runs/resnet18 --method greedy
    """
    from cnnlab.console import result
    from cnnlab.ensemble.folder import ENSEMBLE_CARD, build_ensemble
    from cnnlab.ensemble.report import only_member, only_member_sentence, title
    from cnnlab.errors import CnnlabError
    from cnnlab.runs import read_json

    members = list(runs or [])
    if from_study is not None:
        from cnnlab.ensemble.study import study_members

        members += study_members(from_study, top)
    if not members:
        raise CnnlabError("ensemble needs run folders (or --from-study STUDY_DIR)")
    run = build_ensemble(members, method=method, out=out, runs_dir=runs_dir)
    summary = run.summary
    test = (summary["metrics"].get("test") or {}).get("accuracy")
    gain = summary.get("gain_over_best_member") or {}
    card = read_json(run.path / ENSEMBLE_CARD)
    kept = only_member(card)
    line = f"{run.path}: {title(card)}"
    if test is not None:
        line += f", test accuracy {test:.4f}"
    if gain and gain["best_member"] != kept:  # the one run kept against itself says nothing
        tied = len(gain.get("tied_on_val") or [])
        also = f", which tied on val with {tied} other(s)" if tied else ""
        line += f" ({gain['accuracy_diff']:+.4f} vs {gain['best_member']}{also}: {gain['verdict']})"
    result(line)
    if kept:
        result(only_member_sentence(card))
    result(f"report: {run.report}")
