"""Where ``cnnlab data issues`` left its results, per dataset, and which roots manifests may name.

``data issues`` writes ``issues.csv``, ``issues.html`` and ``clean.csv`` into a folder the user
picks, never into the dataset. This index (``$CNNLAB_CACHE/issues/index.json``) remembers for
each dataset (its folder, or its CSV manifest) where that folder is, a fingerprint of the
files analysed and the counts, so ``data inspect`` can show the number of suspected label
issues with a link, or say that the dataset changed since.

It also resolves the root of a manifest with a ``root`` column. ``clean.csv`` lives outside
the dataset, so its rows name the dataset folder in ``root`` and keep paths relative to it
(the same paths as in ``issues.csv`` and every ``split.csv``). A manifest may only point
cnnlab at a folder that ``data issues`` has analysed on this machine: a downloaded manifest
cannot make cnnlab read an arbitrary folder this way.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.atomic import atomic_write_text
from cnnlab.errors import DataError
from cnnlab.paths import cache_dir

if TYPE_CHECKING:
    from cnnlab.data.scan import ScanResult

FORMAT = "cnnlab-issues-index/1"
ROOT_COLUMN = "root"


def _index_file() -> Path:
    return cache_dir("issues") / "index.json"


def _load() -> dict[str, Any]:
    try:
        doc = json.loads(_index_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or damaged: the index only ever points at results, so start over
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return {}
    entries = doc.get("datasets")
    return entries if isinstance(entries, dict) else {}


def dataset_key(scan: ScanResult) -> str:
    """A dataset is its manifest when it has one, else its folder."""
    return str(scan.manifest or scan.root)


def fingerprint(scan: ScanResult) -> str:
    """Digest of every usable file's path, class and content: changes when any of them does."""
    h = hashlib.sha256()
    for r in sorted(scan.records, key=lambda r: r.path):
        h.update(f"{r.path}\0{r.label}\0{r.sha1}\n".encode())
    return h.hexdigest()[:32]


def record_issues(scan: ScanResult, out_dir: Path, summary: dict[str, Any]) -> None:
    """Remember that ``out_dir`` holds the ``data issues`` results of this scan."""
    entries = _load()
    entries[dataset_key(scan)] = {
        "root": str(Path(scan.root).resolve()),
        "fingerprint": fingerprint(scan),
        "out_dir": str(Path(out_dir).resolve()),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        **summary,
    }
    doc = {"format": FORMAT, "datasets": entries}
    atomic_write_text(_index_file(), json.dumps(doc, indent=1, ensure_ascii=False), durable=False)


def lookup_issues(scan: ScanResult) -> dict[str, Any] | None:
    """The last ``data issues`` results for this dataset, with ``current`` (files unchanged).

    None when there are none, or when their folder has been deleted since.
    """
    entry = _load().get(dataset_key(scan))
    if not entry or not (Path(entry.get("out_dir", "")) / "issues.html").is_file():
        return None
    return {**entry, "current": entry.get("fingerprint") == fingerprint(scan)}


def known_root(folder: Path) -> bool:
    """True when ``data issues`` has analysed ``folder`` on this machine."""
    target = str(folder.resolve())
    return any(e.get("root") == target for e in _load().values())


def manifest_root(manifest: Path, allow_outside: bool = False) -> Path:
    """The folder a manifest's paths are relative to: its ``root`` column, else its own folder.

    A relative ``root`` is read from the manifest's folder. Every row must name the same root.

    Raises:
        DataError: the rows disagree, the root is not a folder, or it is a folder
            ``data issues`` has not analysed here (unless ``allow_outside``).
    """
    from cnnlab.data.manifest import read_rows

    rows = read_rows(manifest)
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if ROOT_COLUMN not in header:
        return manifest.parent
    col = header.index(ROOT_COLUMN)
    roots = {row[col].strip() for row in rows[1:] if col < len(row) and row[col].strip()}
    if not roots:
        return manifest.parent
    if len(roots) > 1:
        raise DataError(f"{manifest}: the root column names {len(roots)} folders; use one")
    root = (manifest.parent / roots.pop()).resolve()
    if not root.is_dir():
        raise DataError(f"{manifest}: its root {root} is not a folder")
    if root != manifest.parent.resolve() and not allow_outside and not known_root(root):
        raise DataError(
            f"{manifest}: its root column names {root}, which `cnnlab data issues` has not "
            f"analysed on this machine; run `cnnlab data issues {root}` first, or move the "
            "manifest into that folder"
        )
    return root


def issues_summary(scan: ScanResult, report_dir: Path) -> dict[str, Any] | None:
    """What ``data inspect`` shows of earlier ``data issues`` results: the count of suspected
    label issues, a link to issues.html relative to ``report_dir``, whether it is current, and
    how good the model behind the flags was (``none``: they are not evidence of wrong labels)."""
    entry = lookup_issues(scan)
    if entry is None:
        return None
    html = Path(entry["out_dir"]) / "issues.html"
    try:
        link = os.path.relpath(html, Path(report_dir).resolve())
    except ValueError:  # another drive (Windows): an absolute link still works
        link = html.as_uri()
    return {
        "label_issues": entry.get("counts", {}).get("label", 0),
        "counts": entry.get("counts", {}),
        "link": Path(link).as_posix(),
        "created": entry.get("created"),
        "current": entry["current"],
        # none | moderate | good (cnnlab.cleaning.skill); None for results older than it
        "model_level": (entry.get("model") or {}).get("level"),
    }
