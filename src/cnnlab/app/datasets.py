"""Data page data: ``cnnlab data inspect`` of a dataset folder the app was given.

The audit is written by :func:`cnnlab.data.audit.write_audit` (the command's own code) into a
temporary folder and read back, never into the dataset: the report (``data_report.json``:
counts, bad files, problems, duplicates, leakage, conflicts, near duplicates) and the
per-class sample strips.

The label issues, near duplicates and outliers of ``cnnlab data issues`` are found by
:func:`cnnlab.cleaning.find_issues` with the command's defaults, and written where the command
writes them by default (``data_issues/<name>`` in the folder the app was started from, moved
beside the dataset if that folder is inside it): never into the dataset.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from cnnlab.app.settings import AppSettings
from cnnlab.console import StageProgress  # noqa: F401  (the Data page's bar; the CLI's too)


def output_kind(folder: Path) -> str | None:
    """``study``, ``tune``, ``ensemble`` or ``run`` when ``folder`` is one of cnnlab's output
    folders or holds one a level down (a folder of studies, a runs folder), else None. Such
    a folder is no dataset: its subfolders would pass for classes of its plots' PNGs."""
    from cnnlab.app.studydata import kind_of
    from cnnlab.ensemble.folder import is_ensemble
    from cnnlab.runs import CLASSES, CONFIG, SUMMARY

    def kind(path: Path) -> str | None:
        if (found := kind_of(path)) is not None:
            return found
        if is_ensemble(path):
            return "ensemble"
        run = (path / CONFIG).is_file() and any((path / f).is_file() for f in (CLASSES, SUMMARY))
        return "run" if run else None

    if (own := kind(folder)) is not None:
        return own
    inside = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    found = next((k for p in inside if (k := kind(p)) is not None), None)
    return None if found is None else f"folder of {'studies' if found == 'study' else found + 's'}"


def dataset_choices(settings: AppSettings) -> dict[str, Path]:
    """Folder name -> folder, for the dataset folders given on the command line (study, tune,
    run and ensemble folders, and folders of them, are not datasets: :func:`output_kind`)."""
    out: dict[str, Path] = {}
    for folder in settings.folders:
        if output_kind(folder) is not None:
            continue
        name = folder.name or str(len(out))
        out[name if name not in out else f"{name} ({len(out) + 1})"] = folder
    return out


def not_datasets(settings: AppSettings) -> dict[str, str]:
    """Folder name -> what it is, for the folders given that :func:`dataset_choices` leaves
    out because they are cnnlab's outputs (the page names them)."""
    kinds = {folder: output_kind(folder) for folder in settings.folders}
    return {folder.name: kind for folder, kind in kinds.items() if kind is not None}


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


def find_label_issues(root: Path, progress: Any = None) -> dict[str, Any]:
    """``cnnlab data issues ROOT`` with its defaults; what it found, for the page.

    ``progress(description, done, total)`` is told as the work advances (a
    :class:`StageProgress`).

    Returns:
        ``{"counts": {kind: n}, "rows": [issues.csv rows as dicts], "method", "folds",
        "images", "seconds", "out_dir": the output folder as the page may show it,
        "model": the out-of-sample model's scores beside the baseline's (one line),
        "verdict": what the label flags are worth (None when the model is good),
        "recommend_clean": whether clean.csv is worth training on,
        "files": {"issues_csv" | "clean_csv" | "issues_html": bytes}}``, the files without
        server paths (:mod:`cnnlab.app.downloads`).
    """
    import contextlib

    from cnnlab.cleaning import find_issues, issues_config
    from cnnlab.cleaning.outputs import COLUMNS, issues_rows
    from cnnlab.console import observe_progress

    watching = observe_progress(progress) if progress else contextlib.nullcontext()
    with watching:
        result = find_issues(issues_config(root), progress=False)
    out = Path(result.out_dir)
    return {
        "counts": result.counts,
        "rows": [dict(zip(COLUMNS, row, strict=True)) for row in issues_rows(result.issues)],
        "method": result.method,
        "folds": result.folds,
        "images": result.images,
        "seconds": result.seconds,
        "model": result.skill.headline(),
        "verdict": result.skill.verdict(result.counts.get("label", 0)),
        "recommend_clean": result.recommend_clean,
        "out_dir": out.as_posix() if not out.is_absolute() else f"data_issues/{out.name}",
        "files": _downloads(result.files, root),
    }


def _downloads(files: dict[str, Path], root: Path) -> dict[str, bytes]:
    """The three files as a visitor downloads them: the dataset folder named by its name,
    never by its path on the server (clean.csv's root column included)."""
    from cnnlab.app.downloads import clean_csv, hide_folder

    out = {name: hide_folder(path.read_bytes(), root) for name, path in files.items()}
    out["clean_csv"] = clean_csv(out["clean_csv"])
    return out
