"""Data page data: ``cnnlab data inspect`` of a dataset folder the app was given.

The audit is written by :func:`cnnlab.data.audit.write_audit` (the command's own code) into a
temporary folder and read back, never into the dataset: the report (``data_report.json``:
counts, bad files, problems, duplicates, leakage, conflicts, near duplicates) and the
per-class sample strips.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cnnlab.app.settings import AppSettings


def dataset_choices(settings: AppSettings) -> dict[str, Path]:
    """Folder name -> folder, for the dataset folders given on the command line."""
    out: dict[str, Path] = {}
    for folder in settings.folders:
        name = folder.name or str(len(out))
        out[name if name not in out else f"{name} ({len(out) + 1})"] = folder
    return out


def inspect_folder(root: Path, near: bool = False) -> dict[str, Any]:
    """``{"report": data_report.json, "strips": {class: PNG bytes}}`` of a dataset folder."""
    from cnnlab.config import DataConfig
    from cnnlab.data.audit import write_audit
    from cnnlab.data.check import check_dataset
    from cnnlab.runs import read_json

    check = check_dataset(DataConfig(root=str(root)), progress=False)
    with tempfile.TemporaryDirectory(prefix="cnnlab-app-") as tmp:
        write_audit(check, tmp, near=near, progress=False)
        report = read_json(Path(tmp, "data_report.json"))
        samples = Path(tmp, "samples")
        strips = {
            label: (samples / f"class_{i:03d}.png").read_bytes()
            for i, label in enumerate(check.scan.classes)
            if (samples / f"class_{i:03d}.png").is_file()
        }
    return {"report": report, "strips": strips}


def group_rows(groups: list[list[dict[str, Any]]]) -> list[dict[str, str]]:
    """Duplicate/leakage/conflict groups as table rows: one row per group."""
    return [
        {"files (class, split)": " | ".join(f"{m['path']} ({m['label']}, {m['split'] or '-'})"
                                             for m in g)}
        for g in groups
    ]  # fmt: skip
