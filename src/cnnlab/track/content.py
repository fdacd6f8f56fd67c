"""What a run folder says, in the shape a tracker logs: params, metric histories, tags, files.

Nothing here imports a tracking library: the same content feeds live logging during ``fit``
and ``cnnlab track log`` afterwards, so both log exactly the same things.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab import runs

MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value (characters)
MAX_KEY_CHARS = 250  # MLflow's limit on a param, metric or tag name (characters)
_INDEX = re.compile(r"\[([^\]]*)\]")  # filters[0] in a search space's parameter names
_REFUSED = re.compile(r"[^\w./\- ]")  # MLflow names: letters, digits, _ - . / and space
# Files copied as artifacts, relative to the run folder (checkpoints stay behind: they are
# for resuming, large, and the weights are in model.safetensors).
ARTIFACT_FILES = (
    runs.REPORT_HTML, runs.REPORT_MD, runs.MODEL_CARD, runs.WEIGHTS, runs.SPLIT, runs.CONFIG,
    runs.CLASSES, runs.SUMMARY, runs.METRICS, runs.DATA_REPORT,
)  # fmt: skip
ARTIFACT_DIRS = (runs.PLOTS, "predictions")


@dataclass
class RunContent:
    """A run folder read once: everything one sync sends."""

    run_dir: Path
    params: dict[str, str]
    history: dict[str, dict[int, float]]  # metric -> {epoch: value}
    finals: dict[str, float]  # final metrics (summary.json), logged once
    tags: dict[str, str]
    files: list[tuple[Path, str]] = field(default_factory=list)  # (file, artifact folder)
    complete: bool = False  # summary.json says the run finished


@dataclass
class SyncReport:
    """What one sync sent."""

    run_id: str
    created: bool = False
    values: int = 0  # metric values
    params: int = 0
    files: int = 0
    status: str | None = None
    store: str = "MLflow"  # which kind of store received it (MLflow, W&B)


def tracker_key(name: str) -> str:
    """A name as every tracker accepts it, for params, metrics and tags alike.

    ``[i]`` becomes ``.i``; a character MLflow refuses (anything but letters, digits, ``_ - .
    /`` and space; a colon too, which a Windows server refuses) becomes ``_``; empty path
    parts go, and ``.`` or ``..`` parts become ``_``; a name over 250 characters keeps 241 and
    ends with ``-`` and 8 hex digits of its sha256, so two long names stay apart.

    >>> tracker_key("space.params.model.cnn.filters[0].type")
    'space.params.model.cnn.filters.0.type'
    >>> tracker_key("vary.train.lr (x:2)//a/../b")
    'vary.train.lr _x_2_/a/_/b'
    """
    text = _REFUSED.sub("_", _INDEX.sub(r".\1", name))
    text = "/".join("_" if part in (".", "..") else part for part in text.split("/") if part)
    text = "_" + text if text.startswith("..") or not text else text
    if len(text) > MAX_KEY_CHARS:
        text = f"{text[: MAX_KEY_CHARS - 9]}-{_digest(name)}"
    return text


def tracker_value(text: str, limit: int = MAX_PARAM_CHARS) -> str:
    """``text``, or its start with a note saying how long it was when it is over ``limit``.

    >>> tracker_value("x" * 100, limit=40)
    'xxxxxxxx... (100 characters; cut to fit)'
    """
    if len(text) <= limit:
        return text
    note = f"... ({len(text)} characters; cut to fit)"
    return text[: limit - len(note)] + note


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"train.lr": "0.01", ...}`` with lists written as JSON.

    Names go through :func:`tracker_key` (``filters[0]`` -> ``filters.0``) and values through
    :func:`tracker_value`; two names that map to one name are kept apart by a digest.

    >>> flatten({"space": {"params": {"f[0]": {"low": 8}}}, "lr": [1, 2]})
    {'space.params.f.0.low': '8', 'lr': '[1, 2]'}
    """
    from cnnlab.config import dotted

    flat: dict[str, str] = {}
    for name, value in dotted(tree, prefix).items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        key = tracker_key(name)
        if key in flat:  # "f[0]" and "f.0" in one space: both are kept
            key = f"{key[: MAX_KEY_CHARS - 9]}-{_digest(name)}"
        flat[key] = tracker_value(text)
    return flat


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def _history(rows: list[dict[str, str]]) -> dict[str, dict[int, float]]:
    """metrics.csv rows -> one series per column, keyed by epoch (empty cells left out)."""
    history: dict[str, dict[int, float]] = {}
    for row in rows:
        try:
            epoch = int(float(row.get("epoch", "")))
        except ValueError:
            continue
        for key, text in row.items():
            if key == "epoch" or not text:
                continue
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value):
                history.setdefault(tracker_key(key), {})[epoch] = value
    return history


def _finals(summary: dict[str, Any]) -> dict[str, float]:
    """Final val/test metrics as ``final/<split>/<metric>``, plus the run's own numbers."""
    finals: dict[str, float] = {}
    for split, metrics in (summary.get("metrics") or {}).items():
        for key, value in metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                finals[tracker_key(f"final/{split}/{key}")] = float(value)
    for key in ("best_epoch", "epochs_run", "train_time_s"):
        if isinstance(summary.get(key), int | float):
            finals[key] = float(summary[key])
    return finals


def file_hash(path: Path, length: int = 16) -> str:
    """A short sha256 of a file's bytes ('' when it does not exist)."""
    if not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:length]


def _read(path: Path) -> Any:
    return runs.read_json(path) if path.is_file() else {}


def _tags(run_dir: Path, config: dict[str, Any], summary: dict[str, Any]) -> dict[str, str]:
    from cnnlab import __version__
    from cnnlab.ensemble.folder import is_ensemble

    card = _read(run_dir / runs.MODEL_CARD)
    report = _read(run_dir / runs.DATA_REPORT)
    model = config.get("model") or {}
    tags = {
        "mlflow.runName": run_dir.name,
        "cnnlab.kind": "ensemble" if is_ensemble(run_dir) else "run",
        "cnnlab.run_dir": str(run_dir.resolve()),
        "cnnlab.model": str(summary.get("model") or model.get("name") or ""),
        "cnnlab.mode": str(summary.get("mode") or model.get("mode") or "auto"),
        "cnnlab.version": str((card.get("versions") or {}).get("cnnlab") or __version__),
        "cnnlab.split_hash": file_hash(run_dir / runs.SPLIT),
        "cnnlab.dataset_fingerprint": str(report.get("fingerprint") or ""),
    }
    return {k: v for k, v in tags.items() if v}


def _files(run_dir: Path) -> list[tuple[Path, str]]:
    from cnnlab.ensemble.folder import ENSEMBLE_CARD  # an ensemble folder's own card

    names = (*ARTIFACT_FILES, ENSEMBLE_CARD)
    files = [(run_dir / name, "") for name in names if (run_dir / name).is_file()]
    for folder in ARTIFACT_DIRS:
        if (run_dir / folder).is_dir():
            files += [(p, folder) for p in sorted((run_dir / folder).iterdir()) if p.is_file()]
    return files


def end_status(run_dir: Path, state: dict[str, Any]) -> str:
    """How a run ended: as its ``track.json`` recorded it when it ended in a tracked process,
    else FINISHED for a complete ``summary.json`` and KILLED for anything less."""
    if state.get("end"):
        return str(state["end"])
    return "FINISHED" if _read(Path(run_dir) / runs.SUMMARY).get("complete") else "KILLED"


def read_run(run_dir: str | Path) -> RunContent:
    """Read a run folder (finished or still training) into what a tracker logs."""
    from cnnlab.errors import RunError

    run_dir = Path(run_dir)
    if not (run_dir / runs.CONFIG).is_file():
        raise RunError(f"{run_dir}: not a run folder (no {runs.CONFIG})")
    run = runs.Run(run_dir)
    config = run.config or {}
    summary = _read(run_dir / runs.SUMMARY)
    return RunContent(
        run_dir=run_dir,
        params=flatten(config),
        history=_history(run.metrics()),
        finals=_finals(summary),
        tags=_tags(run_dir, config, summary),
        files=_files(run_dir),
        complete=bool(summary.get("complete")),
    )
