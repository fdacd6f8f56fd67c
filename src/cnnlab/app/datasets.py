"""Data page data: the audit of a dataset folder the app was given, and per-class samples.

Both come from :mod:`cnnlab.data.audit` (the same checks as ``cnnlab data inspect``); the
sample strips are drawn into a temporary folder, never into the dataset.
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


def audit_folder(root: Path, near: bool = False) -> dict[str, Any]:
    """Counts, bad files, exact duplicates, leakage, conflicts (and near duplicates)."""
    from cnnlab.data.audit import collect_audit
    from cnnlab.data.scan import scan_dataset

    return collect_audit(scan_dataset(root, progress=False), near=near, progress=False)


def class_strips(root: Path) -> dict[str, bytes]:
    """Class -> PNG bytes of a strip of up to 8 of its images (the audit page's grids)."""
    from cnnlab.data.audit_html import sample_grids
    from cnnlab.data.scan import scan_dataset

    scan = scan_dataset(root, progress=False)
    with tempfile.TemporaryDirectory(prefix="cnnlab-app-") as tmp:
        return {label: path.read_bytes() for label, path in sample_grids(scan, Path(tmp)).items()}


def group_rows(groups: list[list[dict[str, Any]]]) -> list[dict[str, str]]:
    """Duplicate/leakage/conflict groups as table rows: one row per group."""
    return [
        {"files (class, split)": " | ".join(f"{m['path']} ({m['label']}, {m['split'] or '-'})"
                                             for m in g)}
        for g in groups
    ]  # fmt: skip
