"""Files the app offers for download, without the server's paths in them.

They are the files the commands write (``clean.csv``, ``issues.html``, ``study.html``,
``tune.html``, ``report.html``), which may name the dataset folder by its full path on the
server. A visitor gets the folder's name instead: messages and downloads never show where
things live on the server.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path


def _absolute_forms(folder: str | Path) -> set[str]:
    """The folder's absolute path as written and resolved (a relative one is no server path)."""
    path = Path(folder).expanduser()
    forms = {str(path), str(path.resolve())}
    return {f for f in forms if Path(f).is_absolute() and Path(f).name}


def hide_paths(text: str, *folders: str | Path | None) -> str:
    """``text`` (HTML too) with the full path of each folder replaced by its name: a path
    inside one becomes relative to where the folder is (``digits/cat/1.png``,
    ``my-study/split.csv``)."""
    forms = {f for folder in folders if folder for f in _absolute_forms(folder)}
    for form in sorted(forms, key=len, reverse=True):  # a folder inside another: its own name
        name = Path(form).name
        text = text.replace(form, name).replace(html.escape(form), html.escape(name))
    return text


def hide_folder(data: bytes, *folders: str | Path | None) -> bytes:
    """UTF-8 bytes with the folders' full paths replaced by their names (:func:`hide_paths`)."""
    if not data or not any(folders):
        return data
    text = data.decode("utf-8", errors="surrogateescape")
    return hide_paths(text, *folders).encode("utf-8", errors="surrogateescape")


def clean_csv(data: bytes) -> bytes:
    """``clean.csv`` whose ``root`` column names the dataset folder by its name only: saved
    beside that folder, ``cnnlab train clean.csv`` trains on it (a relative root is read from
    the manifest's folder)."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if not rows or "root" not in rows[0]:
        return data
    col = rows[0].index("root")
    for row in rows[1:]:
        if col < len(row) and row[col]:
            row[col] = Path(row[col]).name
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")
