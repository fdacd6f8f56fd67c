"""``cnnlab data``: look at a dataset before training, or write a demo dataset.

Only typer is imported at startup; the data package is imported inside each command so
``cnnlab --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Inspect a dataset folder, or write a demo dataset.", no_args_is_help=True)


def _fail(exc: Exception) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[red]error:[/] {exc}", soft_wrap=True)
    return typer.Exit(1)


@app.command()
def inspect(
    folder: Path = typer.Argument(..., help="dataset folder (ROOT/<class>/*) or CSV manifest"),
    out: Path | None = typer.Option(None, "--out", help="report folder [./data_audit/<name>]"),
    near: bool = typer.Option(True, "--near/--no-near", help="look for near duplicates"),
) -> None:
    """Audit a dataset: classes, bad files, sizes, duplicates, leakage, mean/std, samples.

    Writes audit.html (self-contained), audit.json, classes.png and samples/*.png.
    The dataset folder itself is only read.

    Example: cnnlab data inspect data/flowers --out audit/flowers
    """
    from cnnlab.console import info
    from cnnlab.data.audit import write_audit
    from cnnlab.data.scan import print_scan_summary, scan_dataset
    from cnnlab.errors import CnnlabError

    try:
        scan = scan_dataset(folder)
        print_scan_summary(scan)
        html = write_audit(scan, out or Path("data_audit") / folder.resolve().stem, near=near)
    except CnnlabError as exc:
        raise _fail(exc) from None
    for s in scan.skipped[:50]:
        info(f"  skipped {s.path}: {s.reason}")
    if len(scan.skipped) > 50:
        info(f"  ... {len(scan.skipped) - 50} more in audit.json")
    info(f"audit written to {html}")


@app.command()
def demo(
    kind: str = typer.Argument(..., help="digits (sklearn 8x8 digits) or shapes (drawn)"),
    outdir: Path = typer.Argument(..., help="folder to write ROOT/<class>/*.png into"),
) -> None:
    """Write a small demo dataset to try cnnlab offline.

    Example: cnnlab data demo digits data/digits
    """
    from cnnlab.console import info
    from cnnlab.data.demo import write_digits, write_shapes

    if kind not in {"digits", "shapes"}:
        raise typer.BadParameter(f"unknown demo {kind!r}; use digits or shapes", param_hint="KIND")
    root = write_digits(outdir) if kind == "digits" else write_shapes(outdir)
    info(f"demo dataset '{kind}' in {root}")
