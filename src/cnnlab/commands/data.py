"""``cnnlab data``: look at a dataset before training, or write a demo dataset.

Only typer is imported at startup; the data package is imported inside each command so
``cnnlab --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cnnlab.config import DataConfig

app = typer.Typer(help="Inspect a dataset folder, or write a demo dataset.", no_args_is_help=True)


def _fail(exc: Exception) -> typer.Exit:
    """A user mistake (no such folder, a bad option): one line on stderr, exit 2."""
    from rich.console import Console

    Console(stderr=True, highlight=False).print(f"[red]error:[/] {exc}", soft_wrap=True)
    return typer.Exit(2)


@app.command()
def inspect(
    folder: Path = typer.Argument(..., help="dataset folder (ROOT/CLASS/*) or CSV manifest"),
    overrides: list[str] = typer.Argument(
        None, help="data.* settings KEY=VALUE, e.g. data.val_fraction=0.2"
    ),
    out: Path | None = typer.Option(None, "--out", help="report folder [./data_audit/NAME]"),
    near: bool = typer.Option(True, "--near/--no-near", help="look for near duplicates"),
) -> None:
    """Audit a dataset: classes, bad files, sizes, duplicates, leakage, mean/std, samples.

    Reports every problem it finds (empty or too-small classes, bad files, bad manifest
    rows, duplicates, leakage, label conflicts) in data_report.json (the same file a run
    writes) and a self-contained audit.html, with classes.png and samples/*.png. Exit code:
    0 ready to train, 1 something would stop training (the report says what), 2 the folder
    or an option cannot be used at all. The dataset folder itself is only read.

    Example: cnnlab data inspect data/flowers --out audit/flowers data.val_fraction=0.2
    """
    from cnnlab.console import info, warn
    from cnnlab.data.audit import write_audit
    from cnnlab.data.check import check_dataset
    from cnnlab.data.scan import print_scan_summary
    from cnnlab.errors import CnnlabError

    try:
        data = _data_config(folder, overrides or [])
        report_dir = _out_folder(folder, out)  # refused before any work
        check = check_dataset(data)
        print_scan_summary(check.scan)
        html = write_audit(check, report_dir, near=near)
    except CnnlabError as exc:
        raise _fail(exc) from None
    for line in check.warnings:
        warn(line)
    for s in check.scan.skipped[:50]:
        info(f"  skipped {s.path}: {s.reason}")
    if len(check.scan.skipped) > 50:
        info(f"  ... {len(check.scan.skipped) - 50} more in data_report.json")
    info(f"audit written to {html} (and data_report.json beside it)")
    _print_problems(check.problems)
    if not check.ready:
        raise typer.Exit(1)


_PER_KIND = 5  # problems printed per kind; data_report.json holds every one


def _print_problems(problems: list) -> None:
    """Each problem kind's first few, then how many more (a manifest of 10,000 bad rows must
    not print 10,000 lines); the audit's data_report.json lists them all."""
    from collections import Counter

    from cnnlab.console import info, warn

    shown: Counter[str] = Counter()
    for p in problems:
        shown[p.kind] += 1
        if shown[p.kind] <= _PER_KIND:
            (warn if p.blocking else info)(f"{p.kind}: {p.message}")
    for kind, count in shown.items():
        if count > _PER_KIND:
            blocking = any(p.blocking for p in problems if p.kind == kind)
            (warn if blocking else info)(
                f"{kind}: {count - _PER_KIND} more like these ({count} in all), listed in "
                "data_report.json"
            )


def _data_config(folder: Path, overrides: list[str]) -> DataConfig:
    """Defaults + ``data.*`` overrides: the settings that decide what would stop training."""
    from cnnlab.config import load_config
    from cnnlab.errors import ConfigError

    other = [o for o in overrides if not o.strip().startswith("data.")]
    if other:
        raise ConfigError(f"data inspect takes data.* settings only, not {other[0]}")
    return load_config(overrides=overrides, values={"data.root": str(folder)}).data


def _out_folder(folder: Path, out: Path | None) -> Path:
    """``--out``, refused inside the dataset; the default moves beside it when needed."""
    from cnnlab.paths import dataset_folder, outside_dataset

    dataset = dataset_folder(folder)
    default = Path("data_audit") / (dataset.name if folder.is_dir() else folder.resolve().stem)
    return outside_dataset(out, default, dataset, "--out")


@app.command()
def demo(
    kind: str = typer.Argument(..., help="digits (sklearn 8x8 digits) or shapes (drawn)"),
    outdir: Path = typer.Argument(..., help="folder to write ROOT/CLASS/*.png into"),
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


@app.command()
def issues(
    data: str = typer.Argument(..., help="dataset folder (ROOT/CLASS/*) or CSV manifest"),
    overrides: list[str] = typer.Argument(None, help="config overrides KEY=VALUE"),
    model: str | None = typer.Option(
        None, "--model", "-m", help="model behind the probabilities [efficientnet_lite0 or cnn]"
    ),
    folds: int = typer.Option(5, "--folds", "-k", help="K of the K-fold cross-validation"),
    epochs: int | None = typer.Option(None, "--epochs", help="epochs per fold (trained models)"),
    out: Path | None = typer.Option(None, "--out", help="output folder [./data_issues/NAME]"),
    fix: str = typer.Option("drop", "--fix", help="clean.csv: drop or relabel label issues"),
) -> None:
    """Find mislabelled images, near duplicates, outliers and blank/dark/blurry images.

    Out-of-sample probabilities come from K-fold cross-validation (by default a logistic
    regression on pretrained efficientnet_lite0 features); cleanlab finds the label issues.
    Writes issues.csv, issues.html and clean.csv (a manifest to train on). The dataset folder
    itself is only read.

    Example: cnnlab data issues data/flowers --out issues/flowers --fix relabel
    """
    from cnnlab.cleaning import find_issues, issues_config
    from cnnlab.console import result as show

    cfg = issues_config(data, model=model, epochs=epochs, overrides=overrides or [])
    result = find_issues(cfg, folds=folds, out_dir=out, fix=fix)
    found = ", ".join(f"{n} {kind}" for kind, n in result.counts.items())
    show(f"found: {found} ({result.seconds:.1f} s, {result.method})")
    show(f"gallery: {result.files['issues_html']}")
    show(f"train on the cleaned list: cnnlab train {result.files['clean_csv']}")
