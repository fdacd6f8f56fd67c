"""CSV manifests ``path,label[,split]``: rows become candidate files, bad rows problems.

Paths are relative to the manifest's folder, which is the dataset root; an absolute path to a
file inside that folder is taken as the same relative path (scripts often write absolute
paths). A path that leaves that folder (elsewhere on the machine, or climbing out with
``..``) is refused unless
``data.allow_outside_paths=true``: a manifest is often downloaded with a dataset, and it
should not be able to make cnnlab read, hash and report arbitrary files of the machine.
A link that leads out of the folder is skipped ``link outside dataset``, as in a folder walk.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from pathlib import Path

from cnnlab.data.problems import Problem
from cnnlab.data.walk import IMAGE_EXTS, LAYOUT_HELP, SPLIT_NAMES, Candidate, Found, nfc
from cnnlab.errors import DataError

_DRIVE = re.compile(r"^[A-Za-z]:/")  # C:/... written in a manifest made on Windows


def read_rows(path: Path) -> list[list[str]]:
    """Every row of a CSV manifest (UTF-8, with or without a BOM).

    Raises:
        DataError: unreadable, or not UTF-8 (naming the line and how to save it).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        with open(path, "rb") as fh:
            line = fh.read(exc.start).count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not UTF-8 (byte 0x{exc.object[exc.start]:02x}); save the "
            "manifest as UTF-8 (spreadsheets: CSV UTF-8)"
        ) from None
    except (OSError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the CSV manifest ({exc})") from None


def _header(path: Path) -> tuple[list[list[str]], int, int, int | None]:
    """All rows plus the column positions of path, label and split."""
    rows = read_rows(path)
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if "path" not in header or "label" not in header:
        hint = ""
        if rows and len(rows[0]) == 1 and ";" in rows[0][0]:
            hint = " (this one is separated by ';': a manifest's columns are separated by ',')"
        raise DataError(
            f"{path}: the first row must be a header with columns path,label[,split]{hint}"
        )
    isp = header.index("split") if "split" in header else None
    return rows, header.index("path"), header.index("label"), isp


def _leaves(rel: str) -> bool:
    """True when a (relative) manifest path points outside the manifest's folder."""
    if rel.startswith("/") or _DRIVE.match(rel):
        return True
    norm = posixpath.normpath(rel)
    return norm == ".." or norm.startswith("../")


def _inside(path: str, base: Path, base_real: str) -> str | None:
    """An absolute ``path`` as a path relative to ``base`` when it lies inside it, else None.

    Inside as written (``/data/set/a/x.png`` under ``/data/set``), or once links are resolved
    (the folder reached through a link).
    """
    if not os.path.isabs(path):
        return None
    for folder, target in ((os.path.abspath(base), os.path.normpath(path)),
                           (base_real, os.path.realpath(path))):  # fmt: skip
        if target.startswith(folder.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(target, folder)).as_posix()
    return None


def read_manifest(path: Path, allow_outside: bool = False, root: Path | None = None) -> Found:
    """Parse a CSV manifest; every unusable row is collected as a blocking problem.

    ``root``: the folder the paths are relative to when it is not the manifest's own (a
    ``clean.csv`` that names its dataset, see :func:`cnnlab.data.issues_index.manifest_root`).

    Raises:
        DataError: the file cannot be read, has no ``path,label`` header, or lists nothing.
    """
    rows, ip, il, isp = _header(path)
    found = Found(layout="csv")
    base = root or path.parent
    root_real = os.path.realpath(base)
    seen: dict[str, tuple[int, str]] = {}  # path -> (line, label) of its first row
    files: dict[str, tuple[int, str, str]] = {}  # real file -> (line, label, path) of its row
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}: line {n}:"
        rel, label = _cell(row, ip), _cell(row, il)
        if not rel or not label:
            found.problems.append(
                Problem("manifest row", f"{where} empty path or label; every row needs both")
            )
            continue
        split_text = row[isp].strip() if isp is not None and isp < len(row) else ""
        if split_text and split_text.lower() not in SPLIT_NAMES:
            found.problems.append(
                Problem("manifest row", f"{where} unknown split '{split_text}'; use train/val/test")
            )
            continue
        rel = _inside(rel, base, root_real) or rel  # absolute but inside: the same file
        if _leaves(rel) and not allow_outside:
            found.problems.append(
                Problem(
                    "outside path",
                    f"{where} '{rel}' is outside the manifest's folder; move the file in or "
                    "set data.allow_outside_paths=true",
                )
            )
            continue
        rel = posixpath.normpath(rel)
        if rel in seen:
            line, first = seen[rel]
            labels = f" as '{first}' and '{label}'" if nfc(first) != nfc(label) else ""
            text = f"{where} '{rel}' is listed twice (line {line} too{labels})"
            text += "; keep one row per file"
            found.problems.append(Problem("manifest row", text))
            continue
        seen[rel] = (n, label)
        real = os.path.realpath(base / rel)
        if real in files:  # two paths, one file (a link): it would be two samples, or two labels
            line, first, other = files[real]
            labels = f" as '{first}' and '{label}'" if nfc(first) != nfc(label) else ""
            text = f"{where} '{rel}' is the same file as '{other}' (line {line}{labels})"
            found.problems.append(Problem("manifest row", text + "; keep one row per file"))
            continue
        files[real] = (n, label, rel)
        if os.path.isdir(real):
            found.problems.append(
                Problem("manifest row", f"{where} '{rel}' is a folder; list its image files")
            )
            continue
        _add(found, base, root_real, rel, nfc(label), split_text, allow_outside)
    _check_split_column(found, path)
    if not found.candidates and not found.problems and not found.skipped:
        raise DataError(f"{path}: the manifest lists no image files; {LAYOUT_HELP}")
    return found


def _add(
    found: Found, root: Path, root_real: str, rel: str, label: str, split: str, allow: bool
) -> None:
    """One usable row: an image candidate, an unsupported extension, or a link skipped."""
    if Path(rel).suffix.lower() not in IMAGE_EXTS:
        found.unsupported[Path(rel).suffix.lower() or "(none)"] += 1
        return
    real = os.path.realpath(root / rel)
    inside = real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)
    if not inside and not allow:
        found.skipped.append((rel, "link outside dataset"))
        return
    found.candidates.append(
        Candidate(rel, label, SPLIT_NAMES[split.lower()] if split else None, real, False)
    )


def _cell(row: list[str], i: int) -> str:
    return row[i].strip().replace("\\", "/") if i < len(row) else ""


def _check_split_column(found: Found, path: Path) -> None:
    if len({c.split is not None for c in found.candidates}) > 1:
        found.problems.append(
            Problem(
                "manifest row",
                f"{path}: some rows have a split and some do not; fill the split column on "
                "every row or leave it empty on all",
            )
        )
