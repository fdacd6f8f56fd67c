"""Build an ensemble folder that behaves like a run folder.

Layout (beside the run-folder contract in :mod:`cnnlab.runs`)::

    ensemble.json        the ensemble card: method, members (paths relative to this folder,
                         weights, SHA-256 of each member's model.safetensors), classes, split
                         digest, what the weights were fitted on
    config.yaml          data.root (for `cnnlab eval`) and the ensemble's settings
    classes.json, split.csv          the members' (identical) classes and split
    summary.json         same schema as a run's (model "ensemble", mode = method)
    predictions/         {split}.csv and {split}_probs.npy, like a run
    plots/*.png          confusion matrix, per-class F1, reliability, worst mistakes
    report.html          the ensemble against each member, and whether the gain is real

Example:
    >>> build_ensemble(["runs/cnn", "runs/effnet"], method="greedy")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import runs
from cnnlab.console import info
from cnnlab.ensemble.combine import combine, fit
from cnnlab.ensemble.members import SPLITS, Member, check_members, load_member, stacked
from cnnlab.errors import RunError

ENSEMBLE_CARD = "ensemble.json"
FORMAT = "cnnlab-ensemble/1"


def is_ensemble(path: str | Path) -> bool:
    """True for a folder written by :func:`build_ensemble`, once its build is complete (an
    interrupted build leaves its ``.building`` marker: load_run then says so)."""
    path = Path(path)
    return (path / ENSEMBLE_CARD).is_file() and not (path / runs.BUILDING).exists()


def refuse_ensemble(path: str | Path, cannot: str, verb: str) -> None:
    """Refuse an ensemble folder where one run is needed, saying what to do instead.

    ``cannot`` says what the command cannot do with it and why; ``verb`` is what to do to
    the member runs instead (``export``, ``register``). Without this a command reads the
    folder as a run missing model.json.

    Raises:
        RunError: ``path`` is an ensemble folder.
    """
    if is_ensemble(path):
        raise RunError(
            f"{path} is an ensemble: {cannot}; {verb} its member runs (listed with their "
            f"weights in {ENSEMBLE_CARD}) one by one, or predict with the ensemble folder "
            "itself (`cnnlab predict`, `cnnlab.load`)"
        )


def _card(members: list[Member], weights: np.ndarray, method: str, out: Path) -> dict[str, Any]:
    first = members[0]
    return {
        "format": FORMAT,
        "method": method,
        "fitted_on": "val" if method in ("weighted", "greedy") else None,
        "classes": first.classes,
        "split_sha256": first.split_hash,
        "members": [
            {
                "run": os.path.relpath(m.run.path.resolve(), out.resolve()),
                "name": m.name,
                "model": m.summary.get("model"),
                "mode": m.summary.get("mode"),
                "weight": round(float(w), 6),
                # the weights the saved scores (and so the fitted weights, summary and report)
                # came from: a member trained on since is refused when the ensemble is loaded
                "weights_sha256": runs.weights_digest(m.run.path),
            }
            for m, w in zip(members, weights, strict=True)
        ],
    }


def _summary(members: list[Member], weights: np.ndarray, method: str, metrics: dict) -> dict:
    from cnnlab.engine.finalize import _headline

    used = [m for m, w in zip(members, weights, strict=True) if w > 0]
    params = sum(int((m.summary.get("params") or {}).get("total") or 0) for m in used)
    first = members[0].summary
    return {
        "metrics": {s: _headline(v) for s, v in metrics.items()},
        "best_epoch": None,
        "monitor": None,  # no training of its own: nothing picked a best epoch
        "epochs_run": None,
        "stopped_early": False,
        "stopped_by_time_budget": False,
        "validation_skipped_by_time_budget": False,
        "train_time_s": round(sum(float(m.summary.get("train_time_s") or 0) for m in used), 2),
        "model": "ensemble",
        "mode": method,
        "num_classes": len(members[0].classes),
        "precision": None,
        # where the members trained: one name when they agree ("gpu"), else each, sorted
        "accelerator": "+".join(sorted({m.summary.get("accelerator") or "?" for m in used})),
        "lr": None,
        "batch_size": None,
        "freeze_bn_stats": None,
        "tta": None,
        "params": {"total": params},
        "images": first.get("images"),
        "skipped_files": first.get("skipped_files"),
        "members": [m.name for m in used],
        "complete": True,
    }


def _outside_datasets(
    members: list[Member], out: str | Path | None, runs_dir: str | Path | None
) -> Path:
    """Refuse an ``out`` or ``runs_dir`` inside a member's dataset folder, the way ``train``
    refuses its ``runs_dir`` there; the default ``runs`` moves beside the dataset when the
    working folder is inside it. Returns the runs folder to use.

    Raises:
        ConfigError: ``out`` or ``runs_dir`` is inside a member's dataset folder.
    """
    from cnnlab.paths import dataset_folder, outside_dataset

    where = Path(runs_dir or "runs")
    for root in dict.fromkeys(_data_root(m) for m in members):
        if not root:
            continue
        dataset = dataset_folder(root)
        if out is not None:
            outside_dataset(Path(out), Path(out), dataset, "--out")
        else:
            given = Path(runs_dir) if runs_dir is not None else None
            where = outside_dataset(given, where, dataset, "--runs-dir")
    if runs_dir is None and out is None and where != Path("runs"):
        info(f"ensemble folders go to {where}: 'runs' here would be inside the dataset")
    return where


def _data_root(member: Member) -> str | None:
    data = (member.run.config or {}).get("data")
    return (data or {}).get("root")


def _make_folder(out: str | Path | None, runs_dir: Path, name: str) -> tuple[Path, int]:
    """``out`` (new, empty, or an interrupted build), else a fresh ``runs_dir/name`` that
    never overwrites; with its ``.building`` marker locked (the descriptor returned)."""
    from cnnlab.runlock import lock_run, release_run

    if out is None:
        path = runs.create_run_dir(runs_dir, name)
        (path / runs.CHECKPOINTS).rmdir()  # an ensemble trains nothing, so has no checkpoints
        return path, lock_run(path, runs.BUILDING, "built")
    path = Path(out)
    if (path / runs.BUILDING).is_file():  # an interrupted build, unless one is under way
        release_run(lock_run(path, runs.BUILDING, "built"))  # raises while its builder lives
        info(f"{path}: replacing the incomplete ensemble an interrupted build left")
        shutil.rmtree(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunError(f"{path}: exists and is not an empty folder; pick another --out")
    (path / runs.PLOTS).mkdir(parents=True, exist_ok=True)
    return path, lock_run(path, runs.BUILDING, "built")


def _write_inputs(path: Path, members: list[Member], card: dict[str, Any]) -> None:
    import yaml

    first = members[0].run
    runs.write_json(path / ENSEMBLE_CARD, card)
    runs.write_json(path / runs.CLASSES, members[0].classes)
    shutil.copyfile(first.path / runs.SPLIT, path / runs.SPLIT)
    data_report = first.path / runs.DATA_REPORT
    if data_report.is_file():
        shutil.copyfile(data_report, path / runs.DATA_REPORT)
    config = {
        "data": {"root": (first.config.get("data") or {}).get("root")},
        "ensemble": {"method": card["method"], "members": [m["run"] for m in card["members"]]},
    }
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    runs.atomic_write_text(path / runs.CONFIG, text)


def build_ensemble(
    run_dirs: list[str | Path],
    method: str = "soft",
    out: str | Path | None = None,
    runs_dir: str | Path | None = None,
    name: str | None = None,
) -> runs.Run:
    """Combine finished runs into an ensemble folder; weights are fitted on val only.

    Args:
        run_dirs: member run folders (at least two; same classes and split).
        method: ``soft``, ``hard``, ``weighted`` or ``greedy``.
        out: the ensemble folder (must not exist, be empty, or hold a build that was
            killed, which is replaced); default
            ``runs_dir/ensemble-<method>`` with a suffix if taken.
        runs_dir: where the default folder goes (default ``runs``, moved beside the dataset
            when the working folder is inside it).
        name: folder name under ``runs_dir`` instead of ``ensemble-<method>``.

    Returns:
        The ensemble folder as a :class:`~cnnlab.runs.Run`.

    Raises:
        RunError: a member cannot be used (not a finished run, unreadable model card, other
            classes or split).
        ConfigError: ``out`` or ``runs_dir`` lies inside a member's dataset folder (cnnlab
            never writes into the data).
    """
    from cnnlab.ensemble.report import (
        evaluate_splits,
        gain_over_best,
        title,
        write_ensemble_report,
    )
    from cnnlab.ensemble.tracking import track_ensemble
    from cnnlab.runlock import building

    members = [load_member(r) for r in run_dirs]
    check_members(members)
    where = _outside_datasets(members, out, runs_dir)  # before anything is written
    val = stacked(members, "val")
    weights = fit(method, len(members), *(() if val is None else (val[0], val[1].labels)))
    path, fd = _make_folder(out, where, name or f"ensemble-{method}")
    # complete when the block ends, else gone; one killed outright leaves its marker, so
    # predict and eval say it is incomplete and a build with the same --out replaces it
    with building(path, runs.BUILDING, fd):
        card = _card(members, weights, method, path)
        _write_inputs(path, members, card)
        results, gain = {}, None
        for split in SPLITS:
            got = stacked(members, split)
            if got is None:
                continue
            probs = combine(got[0], weights, method)
            results[split] = evaluate_splits(path, split, got[1], probs, members)
            if split == "test":
                gain = gain_over_best(members, probs)
        summary = _summary(members, weights, method, results)
        summary["gain_over_best_member"] = gain
        summary["created"] = runs.creation_time(path)  # as a run's summary records it
        runs.write_json(path / runs.SUMMARY, summary)
        report = write_ensemble_report(path, card, summary, results, members, gain)
    info(f"{title(card)}: {report}")
    track_ensemble(runs.Run(path), members, weights.tolist())
    return runs.Run(path)
