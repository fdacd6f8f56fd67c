"""Predict page logic: which runs can predict, uploads -> result rows, rows -> CSV, samples."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from cnnlab.app.uploads import Upload
from cnnlab.errors import CnnlabError
from cnnlab.runs import list_runs

SAMPLE_COUNT = 6  # sample images offered per click


def predictable_runs(runs_dir: Path) -> list[str]:
    """Names of the finished runs (weights and model card present) under ``runs_dir``."""
    if not runs_dir.is_dir():
        return []
    return [run.name for run in list_runs(runs_dir) if run.is_complete]


def predict_uploads(predictor: Any, uploads: list[Upload], top_k: int) -> list[dict[str, Any]]:
    """One row per upload, in order: ``name``, ``label``, ``prob``, ``top_k`` or ``problem``.

    Good images are classified in one batch by the run's :class:`~cnnlab.predict.Predictor`
    (its preprocessing and its test-time augmentation default, as ``cnnlab predict``).
    """
    good = [u for u in uploads if u.image is not None]
    results = iter(predictor.predict([u.image for u in good], top_k=top_k) if good else [])
    rows = []
    for upload in uploads:
        if upload.image is None:
            rows.append({"name": upload.name, "problem": upload.problem})
            continue
        res = next(results)
        if "error" in res:
            rows.append({"name": upload.name, "problem": f"{upload.name}: {res['error']}"})
        else:
            rows.append({"name": upload.name, **{k: res[k] for k in ("label", "prob", "top_k")}})
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> bytes:
    """The results table as CSV: file, predicted class, probability, top-k, problem."""
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "label", "prob", "top_k", "problem"])
    for r in rows:
        top = "; ".join(f"{c}={p:.4f}" for c, p in r.get("top_k", []))
        prob = f"{r['prob']:.6f}" if "prob" in r else ""
        writer.writerow([r["name"], r.get("label", ""), prob, top, r.get("problem", "")])
    return out.getvalue().encode("utf-8")


def sample_images(run: Any, n: int = SAMPLE_COUNT, seed: int = 0) -> list[tuple[str, bytes, str]]:
    """``n`` images of the run's own test split as ``(file name, bytes, true class)``.

    They go through the same upload checks as a visitor's files. An empty list when the
    run's dataset folder is gone.
    """
    from cnnlab.evaluation.evaluate import _split_samples

    try:
        root, samples = _split_samples(run, "test")
    except CnnlabError:
        return []
    picked = random.Random(seed).sample(samples, min(n, len(samples)))
    out = []
    for rel, label in picked:
        try:
            out.append((Path(rel).name, (root / rel).read_bytes(), label))
        except OSError:
            continue
    return out
