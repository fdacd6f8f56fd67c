"""``cnnlab eval``, ``cnnlab predict`` and ``cnnlab export``: thin shells over the API.

They parse arguments and print; the work happens in :mod:`cnnlab.evaluation.evaluate`,
:mod:`cnnlab.predict` and :mod:`cnnlab.export`, imported inside each command so
``cnnlab --help`` never loads torch. ``CnnlabError`` propagates to the CLI's ``main()``, which
prints it as one line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import typer

from cnnlab.commands.options import overwrite_option, tta_option
from cnnlab.paths import expand_home

PREDICT_COLUMNS = ["path", "label", "prob", "top_k_labels", "top_k_probs", "error"]


def eval_command(
    run: Path = typer.Argument(..., help="Run folder to evaluate.", callback=expand_home),
    data: Path = typer.Option(
        None,
        "--data",
        "-d",
        help="Labelled folder (ROOT/CLASS/* or ROOT/{train,val,test}/CLASS/*) or CSV manifest "
        "(path,label[,split][,root], as train reads it); default: the run's split.",
        callback=expand_home,
    ),
    split: str = typer.Option(
        None,
        help="test | val | train: the run's split, or that split of --data (split folders or "
        "a manifest's split column) [default: test; a flat folder or a manifest without a "
        "split column has no splits: all of its images].",
        show_default=False,
    ),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Evaluation folder [default: RUN/eval-SPLIT, or RUN/eval-DATA-SPLIT for --data].",
        callback=expand_home,
    ),
    tta: bool = tta_option(),
) -> None:
    """Evaluate a run on its test split, a labelled folder or a CSV manifest; writes metrics
    and a report.

    Labels the model does not know are left out with a warning.

    Example:

        cnnlab eval runs/cnn-scratch --data photos/new_batch

        cnnlab eval runs/cnn-scratch --data photos/labels.csv --split test
    """
    from cnnlab.ensemble.folder import is_ensemble
    from cnnlab.evaluation.evaluate import check_split, evaluate_run, print_evaluation
    from cnnlab.paths import check_outside_run_data, check_writable_dir

    check_split(split)
    if out is not None:
        check_outside_run_data(out, run, data)
        if data is not None and data.is_file() and data.suffix.lower() == ".csv":
            from cnnlab.data.issues_index import manifest_root

            check_outside_run_data(out, run, manifest_root(data.resolve()))  # its images' root
        check_writable_dir(out, "--out")
    if is_ensemble(run):
        from cnnlab.ensemble.predictor import evaluate_ensemble

        result = evaluate_ensemble(run, data=data, split=split, out_dir=out, tta=tta)
    else:
        result = evaluate_run(run, data=data, split=split, out_dir=out, tta=tta)
    for item in result["skipped"]:
        typer.echo(f"skipped {item['path']}: {item['reason']}", err=True)
    print_evaluation(result)


def join_labels(labels: list[str]) -> str:
    """Labels in one CSV cell, separated by ``;``; a label holding ``;`` or ``"`` is quoted
    as CSV quotes a field, so ``csv.reader([cell], delimiter=";")`` reads the list back.

    Example:
        >>> join_labels(["cat", "a;b"])
        'cat;"a;b"'
    """
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="").writerow(labels)
    return buffer.getvalue()


def _rows(results: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for r in results:
        top = r.get("top_k", [])
        rows.append({
            "path": str(r.get("path", r.get("index", ""))),
            "label": r.get("label", ""),
            "prob": f"{r['prob']:.6f}" if "prob" in r else "",
            "top_k_labels": join_labels([label for label, _ in top]),
            "top_k_probs": ";".join(f"{p:.6f}" for _, p in top),
            "error": r.get("error", ""),
        })  # fmt: skip
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    from cnnlab.runs import write_csv

    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(path, rows, PREDICT_COLUMNS)


def _print_table(results: list[dict[str, Any]], rows: list[dict[str, str]]) -> None:
    """The predictions as a table, from the results themselves (a class name may hold the
    CSV cell's separator)."""
    from rich.markup import escape
    from rich.table import Table

    from cnnlab.console import result

    table = Table("path", "label", "prob", "top-k", show_lines=False)
    for res, r in zip(results, rows, strict=True):
        if r["error"]:
            table.add_row(escape(r["path"]), "[red]error[/]", "", escape(r["error"]))
            continue
        top = ", ".join(f"{escape(lab)} {p:.2f}" for lab, p in res.get("top_k", []))
        table.add_row(escape(r["path"]), escape(r["label"]), f"{float(r['prob']):.3f}", top)
    result(table)  # a result: printed under --quiet too


SUMMARY_CLASSES = 20  # predicted classes listed by predict --out; the CSV holds every row


def _print_counts(rows: list[dict[str, str]], out: Path) -> None:
    """With ``--out`` the rows are in the CSV: print where, and how many per predicted class,
    not one line per image (4,000 images made an 8,000-line log)."""
    from collections import Counter

    from rich.markup import escape
    from rich.table import Table

    from cnnlab.console import result

    counts = Counter(r["label"] for r in rows if not r["error"])
    bad = len(rows) - sum(counts.values())
    unread = f", {bad} unreadable" if bad else ""
    typer.echo(f"wrote {len(rows)} predictions to {out} ({sum(counts.values())} predicted{unread})")
    if not counts:
        return
    table = Table("predicted class", "images", show_lines=False)
    for label, n in counts.most_common(SUMMARY_CLASSES):
        table.add_row(escape(label), str(n))
    if len(counts) > SUMMARY_CLASSES:
        rest = sum(n for _, n in counts.most_common()[SUMMARY_CLASSES:])
        table.add_row(f"... {len(counts) - SUMMARY_CLASSES} more classes", str(rest))
    result(table)  # a result: printed under --quiet too


def predict_command(
    run: Path = typer.Argument(
        ..., help="Run folder with the trained model.", callback=expand_home
    ),
    paths: list[str] = typer.Argument(
        ..., help="Image files and/or folders (recursed).", callback=expand_home
    ),
    top_k: int = typer.Option(
        5, "--top-k", "-k", min=1, help="How many classes to list per image (all if more)."
    ),
    tta: bool = tta_option(),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Write the predictions as CSV (and print a count per class, not every row).",
        callback=expand_home,
    ),
    overwrite: bool = overwrite_option(),
    backend: str = typer.Option("torch", help="torch | onnx (after `cnnlab export`)."),
) -> None:
    """Classify image files or folders with a trained run; unreadable files are listed, not fatal.

    Prints a row per image, or with ``--out`` writes them to the CSV and prints the count of
    images per predicted class. Exits 2 when nothing could be predicted (every file
    unreadable, or no image found).

    Example:

        cnnlab predict runs/cnn-scratch photos/ cat.jpg --top-k 3 --out predictions.csv
    """
    from cnnlab.errors import DataError
    from cnnlab.paths import check_outside_run_data, check_writable_file
    from cnnlab.predict import load_predictor

    if out is not None:
        check_outside_run_data(out, run)
        check_writable_file(out, "--out", overwrite)
    predictor = load_predictor(run, backend=backend)
    results = predictor.predict(paths, top_k=top_k, tta=tta)
    rows = _rows(results)
    if out is None:
        _print_table(results, rows)
    else:
        _write_csv(out, rows)
        _print_counts(rows, out)
    bad = sum(1 for r in rows if r["error"])
    column = "the error column" + (f" of {out}" if out is not None else "")
    if bad == len(rows):  # nothing predicted: a mistyped path must not look like success
        what = f"all {bad} files could not be read (see {column})" if rows else (
            f"no image files in {' '.join(paths)}"
        )  # fmt: skip
        raise DataError(f"nothing was predicted: {what}; check the paths")
    if bad:
        typer.echo(f"{bad} of {len(rows)} files could not be read (see {column})", err=True)


def export_command(
    run: Path = typer.Argument(
        ..., help="Run folder with the trained model.", callback=expand_home
    ),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx | torchscript"),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Output file [default: in the run folder, where a new export replaces the old].",
        callback=expand_home,
    ),
    overwrite: bool = overwrite_option(),
    opset: int = typer.Option(17, help="ONNX opset version."),
    tolerance: float = typer.Option(
        1e-4, "--tolerance", min=0.0, help="Largest |logit difference| the parity check accepts."
    ),
) -> None:
    """Export a run's model to ONNX or TorchScript and check it against PyTorch.

    Exits 1 when the exported model fails the parity check (the file is kept, marked failed).

    Example:

        cnnlab export runs/cnn-scratch --format onnx
    """
    from cnnlab.console import error
    from cnnlab.errors import ParityError
    from cnnlab.export import export_run
    from cnnlab.paths import check_outside_run_data, check_writable_file

    if out is not None:
        check_outside_run_data(out, run)
        check_writable_file(out, "--out", overwrite)
    try:
        record = export_run(run, format=format, out=out, opset=opset, tolerance=tolerance)
    except ParityError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    typer.echo(
        f"exported {record['file']} (parity ok: max |diff| {record['max_abs_diff']:.2e} "
        f"on {record['parity_inputs']})"
    )
