"""Predict page logic: which runs can predict, uploads -> result rows, rows -> CSV, samples."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.app.uploads import Upload
from cnnlab.errors import CnnlabError
from cnnlab.runs import list_runs

SAMPLE_COUNT = 6  # sample images offered per click
CAM_SIDE = 160  # px of a Grad-CAM overlay on the page (a 32-px map is unreadable at 1:1)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs such a cell


def predictable_runs(runs_dir: Path) -> list[str]:
    """Names of the finished runs (weights and model card present) and of the ensemble
    folders (``cnnlab ensemble``) under ``runs_dir``, oldest first."""
    from cnnlab.ensemble.folder import is_ensemble

    if not runs_dir.is_dir():
        return []
    return [run.name for run in list_runs(runs_dir) if run.is_complete or is_ensemble(run.path)]


def describe(predictor: Any) -> str:
    """One line on what predicts: classes and test-time augmentation, or the ensemble."""
    classes = len(predictor.classes)
    members = getattr(predictor, "members", None)
    if members is not None:
        what = f"an ensemble ({predictor.method}) of {len(members)} runs"
        return f"{classes} classes - {what}, each with its run's test-time augmentation"
    tta = "on" if getattr(predictor, "tta", False) else "off"
    return f"{classes} classes - test-time augmentation {tta}, as `cnnlab predict` uses it"


def predict_uploads(
    predictor: Any, uploads: list[Upload], top_k: int, truths: list[str] | None = None
) -> list[dict[str, Any]]:
    """One row per upload, in order: ``name``, ``label``, ``prob``, ``top_k`` or ``problem``,
    and ``true`` (the true class) when ``truths`` are given (sample images).

    Good uploads are classified in one batch by the folder's predictor from their bytes, the
    code path ``cnnlab predict`` takes for a file (:meth:`cnnlab.predict.Predictor.load`: the
    same decoding at each run's own size, the same preprocessing and test-time augmentation),
    so both give the same probabilities, an ensemble's included.
    """
    good = [u for u in uploads if u.image is not None]
    results = iter(predictor.predict([u.data for u in good], top_k=top_k) if good else [])
    rows = []
    for i, upload in enumerate(uploads):
        row: dict[str, Any] = {"name": upload.name}
        if truths is not None:
            row["true"] = truths[i]
        if upload.image is None:
            row["problem"] = upload.problem
        elif "error" in (res := next(results)):
            row["problem"] = f"{upload.name}: {res['error']}"
        else:
            row.update({k: res[k] for k in ("label", "prob", "top_k")})
        rows.append(row)
    return rows


def cam_overlays(
    explainer: Any, uploads: list[Upload], side: int = CAM_SIDE
) -> list[tuple[np.ndarray, str] | None]:
    """Per upload, its Grad-CAM overlay (uint8 RGB, ``side`` px) and the class it explains.

    :class:`~cnnlab.explain.cam.Explainer` and :func:`~cnnlab.explain.cam.overlay` are what
    ``cnnlab explain`` draws with: the map of each image's predicted class over the pixels the
    model saw, decoded from the upload's bytes as ``cnnlab explain`` decodes the file. None for
    a refused upload.
    """
    from cnnlab.explain.cam import overlay

    good = [u.data for u in uploads if u.image is not None]
    found = {e.key: e for e in explainer.explain(good)[0]} if good else {}
    out: list[tuple[np.ndarray, str] | None] = []
    position = 0
    for upload in uploads:
        item = found.get(position) if upload.image is not None else None
        position += upload.image is not None
        out.append(None if item is None else (overlay(item.image, item.cam, side), item.target))
    return out


def as_text(cell: str) -> str:
    """A text cell as a spreadsheet shows text: one starting with ``= + - @``, a tab or a
    carriage return (a formula to Excel, LibreOffice and Sheets) gets a leading ``'``, OWASP's
    advice against CSV injection; an uploader names the files.

    >>> as_text("=1+1.png"), as_text("cat.png")
    ("'=1+1.png", 'cat.png')
    """
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def rows_to_csv(rows: list[dict[str, Any]]) -> bytes:
    """The results table as CSV for a spreadsheet: file, true class (sample images only),
    predicted class, probability, top-k, problem; text cells through :func:`as_text`."""
    import csv

    truth = any("true" in r for r in rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", *(["true"] if truth else []), "label", "prob", "top_k", "problem"])
    for r in rows:
        top = "; ".join(f"{c}={p:.4f}" for c, p in r.get("top_k", []))
        prob = f"{r['prob']:.6f}" if "prob" in r else ""
        true = [r.get("true") or ""] if truth else []
        text = [r["name"], *true, r.get("label", "")]
        writer.writerow([*map(as_text, text), prob, as_text(top), as_text(r.get("problem", ""))])
    return out.getvalue().encode("utf-8")


def sample_images(
    run: Any, n: int = SAMPLE_COUNT, seed: int = 0, draw: int = 0
) -> list[tuple[str, bytes, str]]:
    """``n`` images of the run's own test split as ``(class/file, bytes, true class)``.

    The split is shuffled by ``seed``; draw ``k`` takes the ``k``-th ``n`` images of that
    order, going round, so each new draw shows images not shown yet while there are any.
    They go through the same upload checks as a visitor's files. An empty list when the
    run's dataset folder is gone.
    """
    from cnnlab.evaluation.evaluate import split_samples

    try:
        root, samples = split_samples(run, "test")
    except CnnlabError:
        return []
    order = random.Random(seed).sample(samples, len(samples))
    count = min(n, len(order))
    start = draw * count % len(order)
    out = []
    for rel, label in (order + order)[start : start + count]:
        try:
            out.append((f"{label}/{Path(rel).name}", (root / rel).read_bytes(), label))
        except OSError:
            continue
    return out
