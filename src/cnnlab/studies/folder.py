"""The study folder: ``study.yaml``, one saved split, run folders, and the result files.

Layout (a contract: the app, MLflow and the bench read it)::

    study.yaml        the resolved plan, the command that made it, how to reproduce it
    split.csv         the one split every run of every cell uses
    schedule.db       the Optuna storage (SQLite; absent when --storage names a server)
    runs/<cell>-seed<N>/   ordinary run folders
    results.csv       one row per run
    table.csv         one row per cell: mean, std and 95% CI over seeds
    comparisons.csv   paired comparisons with CIs, p-values and verdicts
    study.html        the self-contained report
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from cnnlab.atomic import atomic_write_text
from cnnlab.errors import ConfigError, RunError
from cnnlab.studies.plan import Cell, Plan

FORMAT = "cnnlab-study/1"
STUDY_YAML = "study.yaml"
SPLIT = "split.csv"
RUNS = "runs"
RESULTS = "results.csv"
TABLE = "table.csv"
COMPARISONS = "comparisons.csv"
HTML = "study.html"


def study_folder(out: str | Path | None, name: str, data: str) -> Path:
    """Where a new study goes: ``out``, or ``studies/<name>-<time>``; refused inside the
    dataset ``data`` (the next scan would meet study.yaml as a class folder), where the
    default moves beside the dataset instead, as a run's ``runs_dir`` does.

    Raises:
        ConfigError: ``out`` is inside the dataset folder (nothing is created).
    """
    from cnnlab.paths import dataset_folder, outside_dataset

    default = Path("studies") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    given = Path(out).expanduser() if out else None
    return outside_dataset(given, default, dataset_folder(data), "--out")


def create_folder(folder: Path) -> Path:
    """``folder`` made new and empty (from :func:`study_folder`)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(
            f"{folder} already exists and is not empty; continue that study with "
            f"`cnnlab study --resume {folder}` or choose another --out"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plan_digest(plan: Plan) -> str:
    """A short fingerprint of the plan: names the study in a shared storage."""
    text = yaml.safe_dump(plan.to_dict(), sort_keys=True, allow_unicode=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def storage_study_name(folder: Path, plan: Plan) -> str:
    return f"cnnlab-study-{folder.resolve().name}-{plan_digest(plan)}"


def write_plan(folder: Path, plan: Plan, storage: str | None) -> None:
    """``study.yaml``: the plan itself (usable as ``--plan``) plus how it was made."""
    from cnnlab import __version__

    doc: dict[str, Any] = {
        "format": FORMAT,
        "command": plan.command,
        "reproduce": f"cnnlab study {plan.data} --plan {folder / STUDY_YAML}",
        "created": datetime.now().isoformat(timespec="seconds"),
        "cnnlab": __version__,
        "storage": storage,  # None: the SQLite file in this folder; a server URL, redacted
        "split": SPLIT,
        "varied": plan.varied,
        **plan.to_dict(),
    }
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(folder / STUDY_YAML, text)


def load_plan(folder: str | Path) -> tuple[Plan, dict[str, Any]]:
    """The plan saved in a study folder, and the rest of ``study.yaml``."""
    file = Path(folder) / STUDY_YAML
    if not file.is_file():
        raise RunError(f"{folder}: no {STUDY_YAML}, not a study folder")
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        cells = [Cell(str(c["id"]), str(c["label"]), dict(c["set"] or {})) for c in doc["cells"]]
        plan = Plan(
            data=str(doc["data"]),
            cells=cells,
            seeds=[int(s) for s in doc["seeds"]],
            base=dict(doc.get("set") or {}),
            compare=str(doc.get("compare", "best")),
            recipe=doc.get("recipe"),
            command=str(doc.get("command", "")),
        )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{file}: not a readable study plan ({exc})") from None
    return plan, doc


def make_split(folder: Path, plan: Plan) -> Path:
    """Scan the data once and save the split every run of the study will use."""
    from cnnlab.data.scan import print_scan_summary, scan_dataset
    from cnnlab.data.split import load_split, save_split
    from cnnlab.data.split import make_split as split_dataset

    cfg = plan.config(plan.cells[0], plan.seeds[0])
    target = folder / SPLIT
    data = cfg.data
    scan = scan_dataset(data.root, max_pixels=data.max_pixels, min_side=data.min_image_side)
    print_scan_summary(scan)
    if data.split_file:  # the user's own split: checked against the folder, then saved
        # written anew, not copied: with the sha1 of the bytes scanned now, as every run's
        save_split(load_split(data.split_file, scan), target)
        return target
    base_seed = int(plan.base.get("train.seed", cfg.train.seed))
    seed = getattr(data, "split_seed", None)  # data.split_seed, where the engine has it
    split = split_dataset(
        scan,
        data.val_fraction,
        data.test_fraction,
        base_seed if seed is None else seed,
        drop_small_classes=data.drop_small_classes,
    )
    save_split(split, target)
    return target
