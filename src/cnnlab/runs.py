"""The run-folder contract: create, list and load run folders.

A run folder (``runs/<name>/``, never overwritten) is everything downstream tools read:
predict, the app, comparisons and ensembles know nothing of the training engine.

Layout::

    config.yaml          resolved configuration
    classes.json         class names in label order
    split.csv            path,label,split,sha1 for every sample (reusable by later runs)
    data_report.json     what the scan found and skipped
    metrics.csv          one row per epoch, train/... and val/... columns
    summary.json         final metrics, best epoch, timing, when the run was created
    model.safetensors    weights of the best epoch
    model.json           the model card (architecture, classes, preprocessing, exports)
    checkpoints/         last.ckpt and best.ckpt for resume
    plots/*.png          learning curves, confusion matrix, ...
    predictions/         per split: {split}.csv (path,true,pred,prob) and {split}_probs.npy,
                         float32 (N, K) class probabilities, row i = row i of the CSV
                         (ensembles reuse them instead of predicting again)
    report.html          self-contained report (report.md beside it)
    track.json           tracking identity (uid, git commit, parent run); see docs/tracking.md
    .train.lock          held (flock) by the process training the folder (cnnlab.runlock)
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cnnlab.atomic import atomic_path, atomic_write_text
from cnnlab.errors import CnnlabError, RunError

CONFIG = "config.yaml"
CLASSES = "classes.json"
SPLIT = "split.csv"
DATA_REPORT = "data_report.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
WEIGHTS = "model.safetensors"
MODEL_CARD = "model.json"
CHECKPOINTS = "checkpoints"
PLOTS = "plots"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
PREDICTIONS = "predictions"
# In a folder being built (an ensemble): it is complete once this marker is gone.
BUILDING = ".building"

_SAFE_NAME = re.compile(r"[^\w.\-]+", re.UNICODE)


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write JSON (UTF-8, non-ASCII kept readable)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def weights_digest(run_dir: str | Path) -> str:
    """SHA-256 (hex) of the run's ``model.safetensors``: which weights an export was made from."""
    h = hashlib.sha256()
    with (Path(run_dir) / WEIGHTS).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Atomically write dict rows as a UTF-8 CSV with a header (missing keys left empty)."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def write_npy(path: str | Path, array: Any, durable: bool = True) -> None:
    """Atomically write one NumPy array as ``.npy`` (no pickle)."""
    import numpy as np

    with atomic_path(path, durable) as tmp, tmp.open("wb") as fh:
        np.save(fh, np.asarray(array), allow_pickle=False)


def probs_file(run_dir: str | Path, split: str) -> Path:
    """Where a run keeps its final model's class probabilities for ``split``."""
    return Path(run_dir) / PREDICTIONS / f"{split}_probs.npy"


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None


def create_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create ``runs_dir/name``; if it exists, ``name-2``, ``name-3``... Never overwrites."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    base = _SAFE_NAME.sub("_", name).strip("._") or "run"
    for i in range(1, 10_000):
        candidate = root / (base if i == 1 else f"{base}-{i}")
        try:
            candidate.mkdir()  # atomic: two processes never get the same folder
        except FileExistsError:
            continue
        (candidate / PLOTS).mkdir()
        (candidate / CHECKPOINTS).mkdir()
        return candidate
    raise RunError(f"{root}: too many runs named '{base}'")


@dataclass
class Run:
    """A run folder on disk; the properties read its files lazily."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def summary(self) -> dict[str, Any]:
        return read_json(self.path / SUMMARY)

    @property
    def classes(self) -> list[str]:
        return list(read_json(self.path / CLASSES))

    @property
    def model_card(self) -> dict[str, Any]:
        return read_json(self.path / MODEL_CARD)

    @property
    def config(self) -> dict[str, Any]:
        import yaml

        file = self.path / CONFIG
        if not file.is_file():
            raise RunError(f"{file}: missing")
        return yaml.safe_load(file.read_text(encoding="utf-8"))

    @property
    def report(self) -> Path:
        return self.path / REPORT_HTML

    def metrics(self) -> list[dict[str, str]]:
        """Rows of ``metrics.csv`` (one per epoch), values as strings."""
        file = self.path / METRICS
        if not file.is_file():
            return []
        with file.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def split_metrics(self, split: str) -> dict[str, Any] | None:
        """The run's evaluation of ``split`` (``plots/<split>_metrics.json``), if it has a
        readable one."""
        file = self.path / PLOTS / f"{split}_metrics.json"
        if not file.is_file():
            return None
        try:
            return read_json(file)
        except CnnlabError:
            return None

    @property
    def is_complete(self) -> bool:
        return all((self.path / f).is_file() for f in (SUMMARY, WEIGHTS, MODEL_CARD))

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


def load_run(path: str | Path) -> Run:
    """Open a finished run folder, or fail naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run folder not found: {path} (list runs with `cnnlab runs`)")
    if (path / BUILDING).exists():
        raise RunError(
            f"{path}: an incomplete ensemble folder (its build was interrupted?); build it "
            "again with the same --out"
        )
    missing = [f for f in (MODEL_CARD, WEIGHTS, CLASSES) if not (path / f).is_file()]
    if missing:
        raise RunError(f"{path}: not a finished run, missing {', '.join(missing)}")
    return Run(path)


def creation_time(run_dir: str | Path) -> str:
    """When a run folder was made, local time to the microsecond (``2026-11-27T07:38:18.250113``).

    Runs sort by it, and two runs made within one second (small runs on a fast machine) must
    keep the order they were made in, so it is not cut to the second (tables show the second).
    ``summary.json`` records it (``created``) and a resume keeps it, so neither resuming a run
    nor copying its folder moves it. A run without that record (unfinished, or saved before
    it was kept) gets the older modification time of ``split.csv``, written once when the run
    is made, and ``config.yaml``, which a resume rewrites.
    """
    folder = Path(run_dir)
    try:
        created = read_json(folder / SUMMARY).get("created")
    except (CnnlabError, AttributeError):
        created = None
    if isinstance(created, str) and created:
        return created
    stamps = [(folder / f).stat().st_mtime for f in (SPLIT, CONFIG) if (folder / f).is_file()]
    return datetime.fromtimestamp(min(stamps)).isoformat(timespec="microseconds") if stamps else ""


def list_runs(runs_dir: str | Path = "runs") -> list[Run]:
    """Runs under ``runs_dir`` (folders with a config.yaml), oldest first (by creation_time)."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [Run(p) for p in root.iterdir() if p.is_dir() and (p / CONFIG).is_file()]
    return sorted(found, key=lambda r: (creation_time(r.path), r.name))
