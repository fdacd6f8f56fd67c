"""``cnnlab data``: look at a dataset before training, or write a demo dataset.

Only typer is imported at startup; the data package is imported inside each command so
``cnnlab --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cnnlab.paths import expand_home

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
    folder: Path = typer.Argument(
        ..., help="dataset folder (ROOT/CLASS/*) or CSV manifest", callback=expand_home
    ),
    overrides: list[str] = typer.Argument(
        None, help="data.* settings KEY=VALUE, e.g. data.val_fraction=0.2"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="report folder [./data_audit/NAME]", callback=expand_home
    ),
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
    from cnnlab.runs import read_json

    try:
        data = _data_config(folder, overrides or [])
        report_dir = _out_folder(folder, out)  # refused before any work
        check = check_dataset(data)
        print_scan_summary(check.scan)
        html = write_audit(check, report_dir, near=near)
    except CnnlabError as exc:
        raise _fail(exc) from None
    for line in check.notes:
        info(line)
    for line in check.warnings:
        warn(line)
    for s in check.scan.skipped[:50]:
        info(f"  skipped {s.path}: {s.reason}")
    if len(check.scan.skipped) > 50:
        info(f"  ... {len(check.scan.skipped) - 50} more in data_report.json")
    doc = read_json(html.parent / "data_report.json")
    _print_groups(doc["audit"], html)
    _print_near(doc["audit"], html)
    _print_label_issues(doc.get("label_issues"), html)
    info(f"audit written to {html} (and data_report.json beside it)")
    _print_problems(check.problems)
    _print_verdict(check.problems, html.parent / "data_report.json")
    if not check.ready:
        raise typer.Exit(1)


_PER_KIND = 5  # problems printed per kind; data_report.json holds every one
_GROUPS = 5  # duplicate groups printed per kind; audit.html lists up to 200
_MEMBERS = 4  # paths printed per group


def _print_problems(problems: list) -> None:
    """Each problem kind's first few, then how many more (a manifest of 10,000 bad rows must
    not print 10,000 lines); the audit's data_report.json lists them all. Blocking ones are
    errors, the rest notes."""
    from collections import Counter

    from cnnlab.console import error, info

    shown: Counter[str] = Counter()
    for p in problems:
        shown[p.kind] += 1
        if shown[p.kind] <= _PER_KIND:
            (error if p.blocking else info)(f"{p.kind}: {p.message}")
    for kind, count in shown.items():
        if count > _PER_KIND:
            blocking = any(p.blocking for p in problems if p.kind == kind)
            (error if blocking else info)(
                f"{kind}: {count - _PER_KIND} more like these ({count} in all), listed in "
                "data_report.json"
            )


def _print_verdict(problems: list, report: Path) -> None:
    """The last line: ready to train, or how many problems would stop it."""
    from cnnlab.console import error, info

    stops = sum(p.blocking for p in problems)
    if stops:
        error(
            f"not ready to train: {stops} blocking problem(s) (above; all in {report}); "
            "`cnnlab train` refuses this folder until they are fixed"
        )
    else:
        info("ready to train")


def _print_groups(audit: dict, html: Path) -> None:
    """Leakage, label conflicts and other exact duplicates, a few groups each with their
    paths (relative to the dataset root); the rest are in audit.html."""
    from cnnlab.console import info, warn
    from cnnlab.data.audit import audit_warnings

    for key, groups_key, tag in (
        ("leakage", "leakage_groups", "split"),
        ("label_conflicts", "conflict_groups", "label"),
    ):
        if audit.get(key):
            warn(audit_warnings({key: audit[key]})[0] + ":")
            _print_group_list(audit[groups_key], audit[key], tag, html)
    plain = [
        g
        for g in audit.get("duplicate_groups", [])
        if len({m["split"] for m in g if m["split"]}) <= 1 and len({m["label"] for m in g}) == 1
    ]
    if plain:
        info(f"{len(plain)} group(s) of identical images within one class and split:")
        _print_group_list(plain, len(plain), None, html)


def _print_group_list(groups: list, total: int, tag: str | None, html: Path) -> None:
    from cnnlab.console import info

    for group in groups[:_GROUPS]:
        names = [m["path"] + (f" ({m[tag] or '-'})" if tag else "") for m in group]
        more = f" and {len(names) - _MEMBERS} more" if len(names) > _MEMBERS else ""
        info("  " + " = ".join(names[:_MEMBERS]) + more)
    if total > _GROUPS:
        info(f"  ... and {total - _GROUPS} more in {html}")


def _print_near(audit: dict, html: Path) -> None:
    """How many near-duplicate pairs (similar, not identical, pictures) were found and where
    they are listed: too many to print (88 pairs in a 1,836-image folder), yet those across
    classes are label conflicts a reader should look at."""
    from cnnlab.console import info
    from cnnlab.data.audit import NEAR_MAX_IMAGES

    if "near_pairs" not in audit:  # --no-near
        return
    if not audit["near_checked"]:
        info(f"near duplicates not looked for: more than {NEAR_MAX_IMAGES:,} images")
        return
    total, listed = audit["near_duplicates"], len(audit["near_pairs"])
    if total:
        where = "listed" if listed == total else f"the first {listed} listed"
        info(
            f"{total} pair(s) of near-duplicate images "
            f"({audit['near_across_classes']} across classes), {where} in {html}"
        )


def _print_label_issues(found: dict | None, html: Path) -> None:
    """The count of suspected label issues of an earlier ``data issues``, with its gallery."""
    import os

    from cnnlab.console import info

    if not found:
        return
    link = found["link"]
    gallery = link if ":" in link.split("/")[0] else os.path.normpath(html.parent / link)
    from cnnlab.data.audit_html import unjudged

    changed = "" if found["current"] else "; the dataset changed since, run it again"
    info(
        f"label issues: {found['label_issues']} suspected by `cnnlab data issues` "
        f"({found['created']}): {gallery}{changed}{unjudged(found)}"
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
    outdir: Path = typer.Argument(
        ..., help="folder to write ROOT/CLASS/*.png into", callback=expand_home
    ),
) -> None:
    """Write a small demo dataset to try cnnlab offline.

    Example: cnnlab data demo digits data/digits
    """
    from cnnlab.console import info
    from cnnlab.data.demo import SHAPES, write_digits, write_shapes
    from cnnlab.errors import OutputError
    from cnnlab.paths import check_writable_dir

    if kind not in {"digits", "shapes"}:
        raise typer.BadParameter(f"unknown demo {kind!r}; use digits or shapes", param_hint="KIND")
    check_writable_dir(outdir, "OUTDIR")
    # the same demo again completes it; anything else there would become classes beside it
    own = {str(d) for d in range(10)} if kind == "digits" else set(SHAPES)
    there = set()
    if outdir.is_dir():
        there = {p.name for p in outdir.iterdir() if not p.name.startswith(".")}
    if there - own:
        other = ", ".join(sorted(there - own)[:3])
        raise OutputError(
            f"OUTDIR {outdir} already holds {other}: the {kind} demo's classes would be mixed "
            "with them; give a new or empty folder"
        )
    try:
        root = write_digits(outdir) if kind == "digits" else write_shapes(outdir)
    except OSError as exc:
        raise OutputError(f"OUTDIR {outdir}: {exc.strerror or exc}") from None
    info(f"demo dataset '{kind}' in {root}")


@app.command()
def issues(
    data: str = typer.Argument(
        ..., help="dataset folder (ROOT/CLASS/*) or CSV manifest", callback=expand_home
    ),
    overrides: list[str] = typer.Argument(None, help="config overrides KEY=VALUE"),
    model: str | None = typer.Option(
        None, "--model", "-m", help="model behind the probabilities [efficientnet_lite0 or cnn]"
    ),
    folds: int = typer.Option(5, "--folds", "-k", help="K of the K-fold cross-validation"),
    epochs: int | None = typer.Option(None, "--epochs", help="epochs per fold (trained models)"),
    out: Path | None = typer.Option(
        None, "--out", help="output folder [./data_issues/NAME]", callback=expand_home
    ),
    fix: str = typer.Option("drop", "--fix", help="clean.csv: drop or relabel label issues"),
) -> None:
    """Find mislabelled images, near duplicates, outliers and blank/dark/blurry images.

    Out-of-sample probabilities come from K-fold cross-validation (by default a logistic
    regression on pretrained efficientnet_lite0 features); cleanlab finds the label issues.
    The cross-validated accuracy and macro F1 of that model are shown next to always answering
    the most frequent class: when it is not clearly better, the labels cannot be judged and
    clean.csv is not recommended. Writes issues.csv, issues.html, clean.csv (a manifest to
    train on) and summary.json. The dataset folder itself is only read.

    Example: cnnlab data issues data/flowers --out issues/flowers --fix relabel
    """
    from cnnlab.cleaning import find_issues, issues_config
    from cnnlab.console import result as show

    cfg = issues_config(data, model=model, epochs=epochs, overrides=overrides or [])
    result = find_issues(cfg, folds=folds, out_dir=out, fix=fix)
    found = ", ".join(f"{n} {kind}" for kind, n in result.counts.items())
    show(f"found: {found} ({result.seconds:.1f} s, {result.method})")
    show(f"gallery: {result.files['issues_html']}")
    clean = result.files["clean_csv"]
    if not result.recommend_clean:
        show(f"{clean} written, not recommended: the model could not judge the labels (above)")
    elif result.skill.level == "moderate":
        show(f"after reviewing the gallery, train on the cleaned list: cnnlab train {clean}")
    else:
        show(f"train on the cleaned list: cnnlab train {clean}")
