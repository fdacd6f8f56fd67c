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


def hide_folder(data: bytes, folder: str | Path | None) -> bytes:
    """UTF-8 text (HTML too) with the full path of ``folder`` replaced by its name: a path
    inside it becomes relative (``digits/cat/1.png``)."""
    if not folder or not data:
        return data
    text = data.decode("utf-8", errors="surrogateescape")
    for form in sorted(_absolute_forms(folder), key=len, reverse=True):
        name = Path(form).name
        text = text.replace(form, name).replace(html.escape(form), html.escape(name))
    return text.encode("utf-8", errors="surrogateescape")


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
