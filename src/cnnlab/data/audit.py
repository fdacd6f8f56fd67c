"""Data audit: what is in a dataset, and what in it would quietly ruin an experiment.

``audit_dataset`` is the quick check run before training (exact duplicates, the same image in
train and test, the same image under two labels) and costs nothing: the scan already hashed
every file. ``write_audit`` is ``cnnlab data inspect``: it adds near duplicates (perceptual
hash via ``imagehash``, a well-kept library), per-channel mean/std, a class chart, sample
grids and a self-contained HTML page, next to the same ``data_report.json`` a run writes.

Example:
    >>> from cnnlab.config import DataConfig
    >>> check = check_dataset(DataConfig(root="data/flowers"))  # doctest: +SKIP
    >>> html = write_audit(check, "data_audit/flowers")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnlab.data.image import load_image, to_array
from cnnlab.data.parallel import map_chunks
from cnnlab.errors import ImageLoadError

if TYPE_CHECKING:
    from cnnlab.data.check import DataCheck
    from cnnlab.data.scan import ScanResult
    from cnnlab.data.split import Split

THUMB = 64  # px; enough for a perceptual hash and for colour statistics
NEAR_BITS = 4  # max Hamming distance of 64-bit pHashes to call two images near duplicates
NEAR_MAX_IMAGES = 20_000  # the pairwise comparison is quadratic
MAX_LISTED = 200  # groups/pairs listed in the report


def _split_of(scan: ScanResult, split: Split | None) -> dict[str, str | None]:
    if split is not None:
        return {s.path: s.split for s in split.samples}
    return {r.path: r.split for r in scan.records}


def audit_dataset(scan: ScanResult, split: Split | None = None) -> dict[str, Any]:
    """Exact duplicates, leakage across splits and label conflicts, each with paths."""
    where = _split_of(scan, split)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in scan.records:
        groups[r.sha1].append({"path": r.path, "label": r.label, "split": where.get(r.path)})
    dupes = [g for g in groups.values() if len(g) > 1]
    leakage = [g for g in dupes if len({m["split"] for m in g if m["split"]}) > 1]
    conflicts = [g for g in dupes if len({m["label"] for m in g}) > 1]
    return {
        "exact_duplicates": len(dupes),
        "leakage": len(leakage),
        "label_conflicts": len(conflicts),
        "duplicate_groups": dupes[:MAX_LISTED],
        "leakage_groups": leakage[:MAX_LISTED],
        "conflict_groups": conflicts[:MAX_LISTED],
    }


def audit_warnings(found: dict[str, Any], hint: str | None = None) -> list[str]:
    """One console line per kind of duplicate that can bias results, with its count.

    ``hint`` (where the paths are listed) ends each line; ``data inspect`` passes none, as
    it prints the groups right after.
    """
    lines = []
    if found.get("leakage"):
        lines.append(
            f"{found['leakage']} group(s) of identical images span more than one split (leakage)"
        )
    if found.get("label_conflicts"):
        lines.append(
            f"{found['label_conflicts']} group(s) of identical images carry more than one "
            "class (label conflict)"
        )
    return [f"{line}; {hint}" if hint else line for line in lines]


def thumb_stats(paths: list[str], root: str) -> list[dict[str, Any]]:
    """Worker: perceptual hash and per-channel pixel sums of a small RGB thumbnail."""
    import imagehash

    out: list[dict[str, Any]] = []
    for rel in paths:
        try:
            img = load_image(Path(root, rel), 3, draft_side=THUMB)
        except ImageLoadError as exc:
            out.append({"error": exc.reason})
            continue
        thumb = to_array(img, THUMB).astype(np.float64) / 255.0
        arr = thumb.reshape(-1, 3)
        out.append(
            {
                "phash": str(imagehash.phash(img)),
                "sum": arr.sum(0).tolist(),
                "sq": (arr**2).sum(0).tolist(),
                "n": len(arr),
                "grey": grey_stats(thumb),
            }
        )
    return out


def grey_stats(thumb: np.ndarray) -> list[float]:
    """``[mean, std, Laplacian variance]`` of a 0..1 RGB thumbnail's grey (Rec. 601) image.

    The Laplacian's variance measures fine detail: it collapses when an image is blurred.
    ``cnnlab data issues`` flags almost blank, very dark and very blurry images with these.
    """
    from scipy import ndimage

    grey = thumb @ np.array([0.299, 0.587, 0.114])
    return [float(grey.mean()), float(grey.std()), float(ndimage.laplace(grey).var())]


def near_duplicates(hashes: list[int], max_bits: int = NEAR_BITS) -> list[tuple[int, int, int]]:
    """Pairs ``(i, j, distance)`` of 64-bit hashes within ``max_bits``; blockwise, vectorised."""
    h = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int, int]] = []
    for start in range(0, len(h), 512):
        block = h[start : start + 512]
        dist = np.bitwise_count(block[:, None] ^ h[None, :])
        for a, b in zip(*np.nonzero(dist <= max_bits), strict=True):
            i = start + int(a)
            if i < int(b):
                pairs.append((i, int(b), int(dist[a, b])))
    return pairs


def _thumb_pass(scan: ScanResult, progress: bool) -> dict[str, Any]:
    """Near duplicates and mean/std over every image, from one parallel thumbnail pass."""
    paths = [r.path for r in scan.records]
    stats = map_chunks(
        thumb_stats, paths, str(scan.root), description="hashing images", progress=progress
    )
    ok = [(p, s) for p, s in zip(paths, stats, strict=True) if "phash" in s]
    n = sum(s["n"] for _, s in ok) or 1
    mean = np.sum([s["sum"] for _, s in ok], axis=0) / n if ok else np.zeros(3)
    sq = np.sum([s["sq"] for _, s in ok], axis=0) / n if ok else np.zeros(3)
    std = np.sqrt(np.maximum(sq - mean**2, 0.0))
    sha = {r.path: r.sha1 for r in scan.records}
    label = {r.path: r.label for r in scan.records}
    near: list[dict[str, Any]] = []
    if len(ok) <= NEAR_MAX_IMAGES:
        hashes = [int(s["phash"], 16) for _, s in ok]
        for i, j, d in near_duplicates(hashes):
            a, b = ok[i][0], ok[j][0]
            if sha[a] != sha[b]:  # exact copies are reported separately
                near.append({"a": a, "b": b, "distance": d, "same_label": label[a] == label[b]})
    return {
        "channel_mean": [round(float(v), 4) for v in mean],
        "channel_std": [round(float(v), 4) for v in std],
        "near_duplicates": len(near),
        "near_across_classes": sum(not pair["same_label"] for pair in near),
        "near_pairs": near[:MAX_LISTED],
        "near_checked": len(ok) <= NEAR_MAX_IMAGES,
    }


def write_audit(
    check: DataCheck, out_dir: str | os.PathLike[str], near: bool = True, progress: bool = True
) -> Path:
    """Write ``data_report.json``, ``classes.png``, ``samples/*.png`` and ``audit.html``;
    returns the HTML path. Nothing is written inside the dataset folder."""
    from cnnlab.data.audit_html import class_chart, render_html, sample_grids
    from cnnlab.data.check import data_report
    from cnnlab.data.issues_index import issues_summary
    from cnnlab.runs import atomic_write_text, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = data_report(check)
    if near:
        doc["audit"] = {**doc["audit"], **_thumb_pass(check.scan, progress)}
    doc["label_issues"] = issues_summary(check.scanned, out)  # an earlier `cnnlab data issues`
    write_json(out / "data_report.json", doc)
    chart = class_chart(doc["counts"], out / "classes.png")
    grids = sample_grids(check.scan, out / "samples")
    html = out / "audit.html"
    atomic_write_text(html, render_html(doc, chart, grids))
    return html
