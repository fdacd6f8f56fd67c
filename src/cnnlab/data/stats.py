"""Summaries of a scan: the ``data_report.json`` dict and the console table."""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.data.scan import ScanResult


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": min(values), "median": median(values), "max": max(values)}


def image_stats(scan: ScanResult) -> dict[str, Any]:
    """Sizes, aspect ratios, modes and bytes of the usable images."""
    recs = scan.records
    return {
        "width": _spread([r.width for r in recs]),
        "height": _spread([r.height for r in recs]),
        "aspect": _spread([round(r.width / r.height, 3) for r in recs if r.height]),
        "modes": dict(Counter(r.mode for r in recs).most_common()),
        "bytes": _spread([r.size for r in recs]),
    }


def class_counts(scan: ScanResult) -> dict[str, int]:
    counts = Counter(r.label for r in scan.records)
    return {c: counts[c] for c in scan.classes}


def scan_report(scan: ScanResult) -> dict[str, Any]:
    """A JSON-ready summary: counts per class, what was skipped and why, image stats.

    Per-split counts belong to the split, not the scan (a flat folder has none until it is
    split): :func:`cnnlab.data.check.data_report` adds them."""
    counts = class_counts(scan)
    return {
        # Names only: a report may be shared, and must not reveal where the data lives.
        "root": scan.root.name,
        "manifest": scan.manifest.name if scan.manifest else None,
        "layout": scan.layout,
        "classes": scan.classes,
        "num_images": len(scan.records),
        "counts": counts,
        "imbalance_ratio": round(max(counts.values()) / max(1, min(counts.values())), 3)
        if counts
        else 0.0,
        "skipped": [{"path": s.path, "reason": s.reason} for s in scan.skipped],
        "skipped_by_reason": dict(Counter(s.reason for s in scan.skipped).most_common()),
        "ignored": scan.ignored,
        "unsupported": dict(scan.unsupported),
        "image_stats": image_stats(scan),
        "from_cache": scan.from_cache,
    }


def print_summary(scan: ScanResult, max_rows: int = 30) -> None:
    """One short table (largest classes first when there are many) plus skip reasons."""
    from rich.table import Table

    from cnnlab.console import console

    counts = class_counts(scan)
    console.print(
        f"[bold]{scan.root.name}[/]: {len(scan.records)} images, "
        f"{len(scan.classes)} classes ({scan.layout} layout)"
    )
    table = Table()
    table.add_column("class")
    table.add_column("images", justify="right")
    ordered = (
        sorted(counts.items(), key=lambda kv: -kv[1])
        if len(counts) > max_rows
        else list(counts.items())
    )
    for name, n in ordered[:max_rows]:
        table.add_row(name, str(n))
    if len(ordered) > max_rows:
        table.add_row(f"... {len(ordered) - max_rows} more", "")
    console.print(table)
    if scan.skipped:
        reasons = Counter(s.reason for s in scan.skipped).most_common()
        console.print(f"skipped {len(scan.skipped)}: " + ", ".join(f"{n} {r}" for r, n in reasons))
    if scan.unsupported:
        console.print(
            "unsupported files: " + ", ".join(f"{n} {ext}" for ext, n in scan.unsupported.items())
        )
    if scan.ignored:
        console.print(f"ignored {scan.ignored} hidden/system entries")
