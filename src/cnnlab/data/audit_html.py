"""The pictures and the self-contained HTML page of ``cnnlab data inspect``."""

from __future__ import annotations

import base64
import html
import urllib.parse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from cnnlab.data.image import load_image, to_array
from cnnlab.errors import ImageLoadError

if TYPE_CHECKING:
    from cnnlab.data.scan import ScanResult

GRID_PER_CLASS = 8
GRID_SIDE = 96  # px per thumbnail


def class_chart(counts: dict[str, int], path: Path) -> Path:
    """Horizontal bar chart of images per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(counts)[:60]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    ax.barh(names[::-1], [counts[n] for n in names][::-1], color="#4878a8")
    ax.set_xlabel("images")
    ax.set_title("images per class" + (" (first 60)" if len(counts) > 60 else ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing glyphs for CJK/emoji names in the font
        fig.tight_layout()
        fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def sample_grids(scan: ScanResult, folder: Path) -> dict[str, Path]:
    """One strip of up to 8 images per class, ``samples/class_000.png``..."""
    folder.mkdir(parents=True, exist_ok=True)
    by_class: dict[str, list[str]] = {}
    for r in scan.records:
        paths = by_class.setdefault(r.label, [])
        if len(paths) < GRID_PER_CLASS:
            paths.append(r.path)
    out = {}
    for i, label in enumerate(scan.classes):
        strip = Image.new("RGB", (GRID_SIDE * GRID_PER_CLASS, GRID_SIDE), (255, 255, 255))
        for k, rel in enumerate(by_class.get(label, [])):
            try:
                img = load_image(scan.root / rel, 3, draft_side=GRID_SIDE)
            except ImageLoadError:
                continue  # changed since the scan; the strip just has a gap
            strip.paste(Image.fromarray(to_array(img, GRID_SIDE)), (k * GRID_SIDE, 0))
        out[label] = folder / f"class_{i:03d}.png"
        strip.save(out[label])
    return out


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _counts(counts: dict[str, Any], empty: str = "none") -> str:
    """``{'train': 77, 'val': 26}`` as ``train 77, val 26``: words, not a Python repr."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or empty


def _files(by_ext: dict[str, int]) -> str:
    """``{'.gif': 2}`` as ``2 .gif`` (the words of the scan summary), or ``none``."""
    return ", ".join(f"{n} {ext}" for ext, n in by_ext.items()) or "none"


def _numbers(values: Any) -> str:
    """A list of numbers as ``0.39, 0.51, 0.52``; anything else (``-``) as itself."""
    if isinstance(values, list | tuple):
        return ", ".join(f"{v:.4g}" for v in values)
    return str(values)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    """A table, or ``none`` when it has no rows: every empty section reads the same."""
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _groups(groups: list[list[dict[str, Any]]]) -> str:
    rows = [
        [" | ".join(f"{m['path']} ({m['label']}, {m['split'] or '-'})" for m in g)] for g in groups
    ]
    return _table(rows, ["files with identical bytes (class, split)"])


def _problems(problems: list[dict[str, Any]]) -> str:
    if not problems:
        return "<p>nothing stops training</p>"
    rows = [[p["kind"], "yes" if p["blocking"] else "no", p["message"]] for p in problems]
    return _table(rows, ["problem", "stops training", "details"])


def _label_issues(found: dict[str, Any] | None) -> str:
    """The line about an earlier ``cnnlab data issues``, or a hint to run it."""
    if not found:
        return "<p>Label issues: not checked yet (<code>cnnlab data issues DIR</code>)</p>"
    stale = "" if found["current"] else " (the dataset has changed since; run it again)"
    link = html.escape(urllib.parse.quote(found["link"], safe="/:"), quote=True)
    return (
        f"<p>Label issues: <b>{found['label_issues']}</b> suspected by "
        f'<a href="{link}">cnnlab data issues</a> on {html.escape(str(found["created"]))}'
        f"{stale}{html.escape(unjudged(found))}</p>"
    )


def unjudged(found: dict[str, Any]) -> str:
    """The caveat after the count when the model behind the flags could not judge labels."""
    if found.get("model_level") != "none":
        return ""
    return "; not evidence of wrong labels: the model behind them could not judge the labels"


def render_html(doc: dict[str, Any], chart: Path, grids: dict[str, Path]) -> str:
    """One HTML page with every image embedded (it can be mailed or attached as is)."""
    s, audit = doc["image_stats"], doc["audit"]
    verdict = "ready to train" if doc["ready_to_train"] else "NOT ready to train"
    parts = [
        f"<h1>Data audit: {html.escape(doc['root'])}</h1>",
        f"<p><b>{verdict}</b>: {doc['num_images']} images, {len(doc['classes'])} classes, "
        f"layout {html.escape(doc['layout'])}, imbalance ratio {doc['imbalance_ratio']}, "
        f"split: {html.escape(_counts(doc['splits'], 'not made'))}</p>",
        f"<h2>Problems ({len(doc['problems'])})</h2>",
        _problems(doc["problems"]),
        _label_issues(doc.get("label_issues")),
        "<h2>Classes</h2>",
        _table([[c, n] for c, n in doc["counts"].items()], ["class", "images"]),
        _img_tag(chart, "images per class"),
        "<h2>Images</h2>",
        _table(
            [
                [k, s[k]["min"], s[k]["median"], s[k]["max"]]
                for k in ("width", "height", "aspect", "bytes")
            ],
            ["", "min", "median", "max"],
        ),
        f"<p>modes: {html.escape(_counts(s['modes']))}</p>",
        f"<p>channel mean {_numbers(audit.get('channel_mean', '-'))}; "
        f"std {_numbers(audit.get('channel_std', '-'))}</p>",
        f"<h2>Skipped files ({len(doc['skipped'])})</h2>",
        _table([[x["path"], x["reason"]] for x in doc["skipped"]], ["path", "reason"]),
        f"<p>ignored {doc['ignored']} hidden/system entries; unsupported: "
        f"{html.escape(_files(doc['unsupported']))}</p>",
        f"<h2>Leakage across splits ({audit['leakage']})</h2>",
        _groups(audit["leakage_groups"]),
        f"<h2>Label conflicts ({audit['label_conflicts']})</h2>",
        _groups(audit["conflict_groups"]),
        f"<h2>Exact duplicates ({audit['exact_duplicates']})</h2>",
        _groups(audit["duplicate_groups"]),
    ]
    if "near_pairs" in audit:
        parts += [
            f"<h2>Near duplicates ({audit['near_duplicates']})</h2>",
            _table(
                [
                    [p["a"], p["b"], p["distance"], "yes" if p["same_label"] else "no"]
                    for p in audit["near_pairs"]
                ],
                ["a", "b", "bits", "same class"],
            ),
        ]
    parts.append("<h2>Samples</h2>")
    for label, path in grids.items():
        parts += [f"<h3>{html.escape(label)}</h3>", _img_tag(path, label)]
    style = (
        "body{font-family:sans-serif;max-width:1000px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>cnnlab data audit</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
