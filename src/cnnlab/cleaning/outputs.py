"""What ``data issues`` writes: issues.csv, clean.csv, a self-contained issues.html and
summary.json (the counts, and how good the model behind the label flags was against always
answering the most frequent class: when it was no better, clean.csv is still written but
marked "not recommended" in issues.html, summary.json and on the terminal).

``clean.csv`` is a manifest ``path,label,split,root``: the dataset's own relative paths and
split, with the flagged label issues left out (``drop``) or given the suggested class
(``relabel``), and the dataset folder in ``root`` (the CSV lives outside the dataset, which is
never written). ``cnnlab train clean.csv`` trains on it as is; see ``data.issues_index``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnlab.atomic import atomic_write_text
from cnnlab.cleaning.detect import KINDS, Issue

if TYPE_CHECKING:
    from cnnlab.cleaning.pipeline import IssuesResult
    from cnnlab.engine.setup import DataBundle

ISSUES_CSV, CLEAN_CSV, ISSUES_HTML = "issues.csv", "clean.csv", "issues.html"
SUMMARY_JSON = "summary.json"
SUMMARY_FORMAT = "cnnlab-issues-summary/1"
COLUMNS = (
    "kind", "rank", "path", "split", "given_label", "suggested_label", "suggested_prob",
    "score", "related",
)  # fmt: skip
DONE = {"drop": "left out", "relabel": "given the suggested class"}
GALLERY_MAX = 60  # pictures per kind in the HTML; issues.csv lists every issue
THUMB_SIDE = 96  # px
TITLES = {
    "label": "Suspected label issues",
    "near_duplicate": "Near duplicates",
    "outlier": "Outliers",
    "blank": "Almost blank images",
    "dark": "Very dark images",
    "blurry": "Very blurry images",
}
SCORES = {
    "label": "label quality: the out-of-sample probability of the given class (low = suspect)",
    "near_duplicate": "bits that differ between the two 64-bit perceptual hashes (0 = same)",
    "outlier": "cleanlab out-of-distribution score (low = unlike the rest)",
    "blank": "grey-level standard deviation, 0..1",
    "dark": "mean grey level, 0..1",
    "blurry": "sharpness as a fraction of the dataset's median sharpness",
}


def _csv_text(header: tuple[str, ...] | list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def issues_rows(issues: list[Issue]) -> list[list[Any]]:
    """Rows of issues.csv, grouped by kind in ``KINDS`` order, worst first."""
    ordered = sorted(issues, key=lambda i: (KINDS.index(i.kind), i.rank))
    return [
        [i.kind, i.rank, i.path, i.split or "", i.given, i.suggested or "",
         _num(i.suggested_prob), _num(i.score), i.related or ""]
        for i in ordered
    ]  # fmt: skip


def clean_rows(data: DataBundle, issues: list[Issue], fix: str) -> list[list[Any]]:
    """The manifest rows: every image, label issues dropped or relabelled."""
    flagged = {i.path: i.suggested for i in issues if i.kind == "label"}
    where = {s.path: s.split for s in data.split.samples}
    root = str(Path(data.root).resolve())
    rows = []
    for path, y in zip(data.paths, data.labels.tolist(), strict=True):
        label = data.classes[y]
        if path in flagged:
            if fix == "drop":
                continue
            label = flagged[path] or label
        rows.append([path, label, where.get(path, ""), root])
    return rows


def write_outputs(result: IssuesResult, data: DataBundle, fix: str) -> dict[str, Path]:
    """Write the four files into ``result.out_dir``; returns their paths by name."""
    out = Path(result.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"issues_csv": out / ISSUES_CSV, "clean_csv": out / CLEAN_CSV}
    atomic_write_text(files["issues_csv"], _csv_text(COLUMNS, issues_rows(result.issues)))
    clean = clean_rows(data, result.issues, fix)
    atomic_write_text(files["clean_csv"], _csv_text(["path", "label", "split", "root"], clean))
    files["issues_html"] = out / ISSUES_HTML
    atomic_write_text(files["issues_html"], render_issues(result, data, fix))
    files["summary_json"] = out / SUMMARY_JSON
    atomic_write_text(files["summary_json"], summary_json(result, data, fix))
    return files


def summary_json(result: IssuesResult, data: DataBundle, fix: str) -> str:
    """summary.json: the counts, the model behind the label flags against the majority
    baseline, and whether clean.csv is recommended (with why not), for scripts."""
    import json

    doc = {
        "format": SUMMARY_FORMAT,
        "images": result.images,
        "classes": len(data.classes),
        "counts": result.counts,
        "method": result.method,
        "folds": result.folds,
        "model": result.skill.as_dict(),
        "clean_csv": {
            "fix": fix,
            "recommended": result.recommend_clean,
            "note": result.skill.verdict(result.counts["label"]),
        },
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _model_blocks(result: IssuesResult) -> list[Any]:
    """How good the model behind the label flags is, next to the no-skill baseline, and
    what that makes of the flags."""
    from cnnlab.evaluation.render import Block

    s = result.skill
    rows = [
        ["this model, out of sample", f"{s.accuracy:.4f}",
         f"{s.accuracy_low:.3f}-{s.accuracy_high:.3f}", f"{s.macro_f1:.4f}"],
        [f"always answering '{s.majority_class}'", f"{s.majority_accuracy:.4f}", "",
         f"{s.majority_macro_f1:.4f}"],
    ]  # fmt: skip
    verdict = s.verdict(result.counts["label"])
    words = {
        "none": f"Warning: {verdict}.",
        "moderate": f"Caution: {verdict}.",
        "good": "The model is well above the baseline: its flags are worth reviewing.",
    }
    return [
        Block("p", text="The model behind the label flags, scored on the same out-of-fold "
                        "probabilities against the given labels (wrong labels lower it too):"),
        Block("table", headers=["", "accuracy", "95% interval", "macro F1"], rows=rows),
        Block("p", text=words[s.level]),
    ]  # fmt: skip


def _thumb(data: DataBundle, index: dict[str, int], path: str) -> Any:
    """The cached uint8 pixels of one image as a PIL thumbnail."""
    from PIL import Image

    from cnnlab.engine.databundle import decode_all

    i = index[path]
    arr = decode_all(data.images[i : i + 1])[0].permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    img = Image.fromarray(np.ascontiguousarray(arr))
    img.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return img


def _jpeg(img: Any) -> bytes:
    """JPEG: a gallery of photos stays a few KB per picture (PNG is 5-10x larger)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _card(data: DataBundle, index: dict[str, int], issue: Issue) -> list[Any]:
    """[JPEG bytes, caption] of one issue; a near duplicate shows both images side by side."""
    from PIL import Image

    img = _thumb(data, index, issue.path)
    lines = [f"#{issue.rank} {issue.path}", f"class: {issue.given}"]
    if issue.related:
        other = _thumb(data, index, issue.related)
        size = (img.width + other.width + 4, max(img.height, other.height))  # 4-px white gap
        pair = Image.new("RGB", size, "white")
        pair.paste(img.convert("RGB"), (0, 0))
        pair.paste(other.convert("RGB"), (img.width + 4, 0))
        img = pair
        lines.append(f"same as {issue.related}")
    if issue.suggested and issue.kind == "label":
        lines.append(f"suggested: {issue.suggested} ({issue.suggested_prob:.2f})")
    elif issue.suggested:
        lines.append(f"other is class: {issue.suggested}")
    lines.append(f"score {issue.score:.3g}")
    return [_jpeg(img), "\n".join(lines)]


def render_issues(result: IssuesResult, data: DataBundle, fix: str) -> str:
    """issues.html: a summary, then one gallery per kind, worst first."""
    from cnnlab.evaluation.render import Block, Section, render_html

    index = {p: i for i, p in enumerate(data.paths)}
    counts = ", ".join(f"{result.counts[k]} {TITLES[k].lower()}" for k in KINDS)
    clean = "" if result.recommend_clean else " (not recommended: see above)"
    summary = Section("summary", "Summary", [
        Block("p", text=f"{result.images} images of {data.root}, {len(data.classes)} classes."),
        Block("p", text=f"Out-of-sample probabilities: {result.method}, {result.folds}-fold "
                        f"cross-validation; {result.seconds:.1f} s in all."),
        *_model_blocks(result),
        Block("p", text=f"Found {counts}. clean.csv: label issues {DONE[fix]}{clean}; the "
                        "dataset folder was only read."),
        Block("table", headers=["kind", "found", "score"],
              rows=[[TITLES[k], result.counts[k], SCORES[k]] for k in KINDS]),
    ])  # fmt: skip
    sections = [summary]
    for kind in KINDS:
        picked = [i for i in result.issues if i.kind == kind]
        picked.sort(key=lambda i: i.rank)
        blocks = [Block("gallery", rows=[_card(data, index, i) for i in picked[:GALLERY_MAX]])]
        if kind == "label" and picked and not result.recommend_clean:
            blocks.insert(
                0,
                Block(
                    "p",
                    text="Not evidence of wrong labels: the model behind "
                    "these flags could not judge them (Summary).",
                ),
            )
        more = len(picked) - GALLERY_MAX
        if more > 0:
            blocks.append(Block("p", text=f"... and {more} more in issues.csv"))
        if not picked:
            blocks = [Block("p", text="none found")]
        sections.append(Section(kind, f"{TITLES[kind]} ({len(picked)})", blocks))
    return render_html("cnnlab data issues", sections)
