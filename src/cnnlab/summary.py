"""Console tables of runs and results (no heavy imports: ``cnnlab runs`` must be instant)."""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path
from typing import Any

from rich import box
from rich.measure import Measurement
from rich.table import Table

from cnnlab.console import result
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.runs import MODEL_CARD, SUMMARY, WEIGHTS, Run, creation_time, list_runs

ENSEMBLE_CARD = "ensemble.json"  # cnnlab.ensemble.folder's (not imported here: it needs numpy)


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _split_metric(summary: dict[str, Any], split: str, key: str) -> Any:
    return summary.get("metrics", {}).get(split, {}).get(key)


# --sort keys: (how to read the value from a run's row, highest first?)
SORT_KEYS = {
    "created": (lambda r: r["created"], False),
    "name": (lambda r: r["name"], False),
    "epochs": (lambda r: r["epochs_run"], True),
    "train_time_s": (lambda r: r["train_time_s"], False),
    **{
        f"{split}_{metric}": ((lambda r, k=f"{split}_{metric}": r[k]), True)
        for split in ("val", "test")
        for metric in ("accuracy", "macro_f1")
    },
    "val_log_loss": (lambda r: r["val_log_loss"], False),
    "test_log_loss": (lambda r: r["test_log_loss"], False),
    "params": (lambda r: r["params"], False),
    "trainable_params": (lambda r: r["trainable_params"], False),
}


def run_rows(runs_dir: str | Path = "runs", sort: str = "created") -> list[dict[str, Any]]:
    """One flat dict per run under ``runs_dir`` (name, model, metrics...), sorted by ``sort``.

    Accuracy and F1 sort best first, losses lowest first, ``train_time_s`` fastest first,
    parameter counts smallest first, ``created`` oldest first; runs without the value
    (unfinished, or saved before it was recorded) come last.
    """
    if sort not in SORT_KEYS:
        close = difflib.get_close_matches(sort, list(SORT_KEYS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"cannot sort runs by '{sort}'; {hint}use one of {', '.join(SORT_KEYS)}")
    rows = [_row(run) for run in list_runs(runs_dir)]  # oldest first: equal keys keep it
    read, highest_first = SORT_KEYS[sort]
    present = [r for r in rows if read(r) is not None]
    present.sort(key=read, reverse=highest_first)
    return present + [r for r in rows if read(r) is None]


def _row(run: Run) -> dict[str, Any]:
    """One run's row. A run without a finished summary (stopped, or still training) has what
    its config.yaml and metrics.csv know: model, mode ("auto" when cnnlab picks it), epochs
    so far, and its last epoch's val metrics (``last_val_*``; ``val_*`` are final ones).

    ``val_log_loss`` / ``test_log_loss`` are the final evaluation's cross-entropy (no label
    smoothing) of the restored best epoch's weights; ``params`` / ``trainable_params`` the
    model card's counts (a frozen backbone trains only its head). None when not recorded."""
    problem = None
    try:
        summary = run.summary
    except CnnlabError:
        summary = {}
        if (run.path / SUMMARY).is_file():  # none yet: still training, or stopped
            problem = f"{SUMMARY} cannot be read"
    try:
        cfg = run.config
    except CnnlabError:
        cfg = {}
    model, train, data = (cfg.get(k) or {} for k in ("model", "train", "data"))
    rows = run.metrics()
    complete = bool(summary.get("complete"))
    if complete and not (run.path / ENSEMBLE_CARD).is_file():  # an ensemble has no weights
        lost = [f for f in (WEIGHTS, MODEL_CARD) if not (run.path / f).is_file()]
        problem = f"{' and '.join(lost)} missing" if lost else None
    row: dict[str, Any] = {
        "name": run.name,
        "path": str(run.path),
        "complete": complete and problem is None,
        "problem": problem,
        "created": creation_time(run.path),
        "model": summary.get("model") or model.get("name"),
        "mode": summary.get("mode") or model.get("mode") or (None if complete else "auto"),
        "epochs_run": summary.get("epochs_run", None if complete else len(rows)),
        "epochs_planned": train.get("epochs"),
        "train_time_s": summary.get("train_time_s"),
        "best_epoch": summary.get("best_epoch"),
        "lr": summary.get("lr", train.get("lr")),
        "batch_size": summary.get("batch_size", train.get("batch_size")),
        "dataset": Path(str(data.get("root") or "")).name or None,
        # a tune trial its pruner stopped: {"by", "after_epoch", ...}; its metrics are short
        "pruned": summary.get("pruned") if isinstance(summary.get("pruned"), dict) else None,
    }
    for split in ("val", "test"):
        for metric in ("accuracy", "macro_f1", "log_loss"):
            row[f"{split}_{metric}"] = _split_metric(summary, split, metric)
    params = summary.get("params")
    for key, kind in (("params", "total"), ("trainable_params", "trainable")):
        count = params.get(kind) if isinstance(params, dict) else None
        row[key] = count if isinstance(count, int) else None
    if not row["complete"]:
        last = rows[-1] if rows else {}
        for metric in ("accuracy", "macro_f1"):
            row[f"last_val_{metric}"] = _number(last.get(f"val/{metric}"))
        row["train_time_s"] = sum(_number(r.get("epoch_time_s")) or 0.0 for r in rows) or None
    return row


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


_HEADERS = (
    "run",
    "model",
    "mode",
    "ep",
    "val\nacc",
    "val\nF1",
    "test\nacc",
    "test\nF1",
    "time\n(s)",
)
_MODEL_CHARS = 12  # model names longer than this are shortened in the narrow table


def shorten(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters: run names differ at both ends
    (model and mode first, time stamp last), so both ends are kept."""
    from cnnlab.evaluation.figure import cut_middle

    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    return cut_middle(text, width // 2, width - 1 - width // 2)


# --wide adds these columns after the others
_WIDE_HEADERS = (
    "data", "lr", "batch", "best\nep", "val\nloss", "test\nloss", "params", "trained\nparams",
    "created",
)  # fmt: skip


def _cells(r: dict[str, Any], wide: bool = False) -> list[str]:
    done = r["complete"]
    val = "val" if done else "last_val"  # an unfinished run: its last epoch's (marked *)
    epochs = _fmt(r["epochs_run"]) if done else f"{r['epochs_run']}/{_fmt(r['epochs_planned'])}"
    if done and r.get("pruned"):
        epochs += " pruned"
    cells = [
        r["name"], _fmt(r["model"]), _fmt(r["mode"]), epochs,
        *(_fmt(r[f"{val}_{m}"], 3) + ("" if done or r[f"{val}_{m}"] is None else "*")
          for m in ("accuracy", "macro_f1")),
        _fmt(r["test_accuracy"], 3), _fmt(r["test_macro_f1"], 3),
        _fmt(r["train_time_s"], 1),
    ]  # fmt: skip
    if wide:
        lr = "auto" if r["lr"] is None else f"{r['lr']:.3g}"
        best = _fmt(r["best_epoch"])
        losses = [_fmt(r[f"{split}_log_loss"]) for split in ("val", "test")]
        counts = [_count(r[key]) for key in ("params", "trainable_params")]
        cells += [_fmt(r["dataset"]), lr, _fmt(r["batch_size"]), best, *losses, *counts,
                  r["created"][:19]]  # to the second  # fmt: skip
    return cells


def _count(value: int | None) -> str:
    """``1,325``: parameter counts as seed report 003's table gives them; ``-`` if unknown."""
    return "-" if value is None else f"{value:,}"


def _table(title: str, cells: list[list[str]]) -> Table:
    # one space between columns: an 80-column terminal keeps ~24 characters for run names
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=0)
    headers = _HEADERS + (_WIDE_HEADERS if cells and len(cells[0]) > len(_HEADERS) else ())
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 3 or i == 9 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    return table


def _fit_names(title: str, cells: list[list[str]], console: Any) -> list[list[str]]:
    """Rows with run and model names shortened so the table fits the console's width."""
    cells = [[row[0], shorten(row[1], _MODEL_CHARS), *row[2:]] for row in cells]
    longest = max(len(row[0]) for row in cells)
    natural = Measurement.get(console, console.options.update_width(10**6), _table(title, cells))
    excess = natural.maximum - console.width
    if excess <= 0:
        return cells
    keep = max(12, longest - excess)  # 12: still enough to tell most runs apart
    return [[shorten(row[0], keep), *row[1:]] for row in cells]


def runs_table(runs_dir: str | Path = "runs", sort: str = "created", wide: bool = False) -> Table:
    """Print (and return) a table of every run under ``runs_dir`` with its main metrics.

    Long run and model names are shortened in the middle (…) so each run takes one line of
    the terminal; ``wide`` prints them in full (as ``cnnlab runs --json`` does) and adds the
    dataset, lr, batch size, best epoch, the val and test loss of the final model, the
    parameter counts (total, trained) and the creation time; a value a run did not record
    (an older or unfinished run) is ``-``. Runs that did not finish show
    their epochs so far of those planned and their last epoch's val metrics, and a line
    after the table says how to resume each. A tune trial its pruner stopped shows
    ``pruned`` beside its epochs. A terminal too narrow for the table even so gets one
    record per run (no number is ever cut short).
    """
    from cnnlab.console import console
    from cnnlab.tablefit import fit_table, records

    title = f"runs in {runs_dir}"
    rows = run_rows(runs_dir, sort)
    cells = [_cells(r, wide) for r in rows]
    if not cells:
        result(f"no runs in {runs_dir} (train one with `cnnlab train DATA`)")
        return _table(title, cells)
    if wide:
        table = _table(title, cells)
        result(table, width=100_000)
    else:
        table = _table(title, _fit_names(title, cells, console))
        shown = fit_table(table, console.width)
        # too narrow even with short names: one record per run, names and numbers whole
        result(shown if shown is table else records(_table(title, cells)))
    if any(r["complete"] and r.get("pruned") for r in rows):
        result("pruned = a tune's pruner stopped the trial early: its metrics are of a short run")
    unfinished = [r for r in rows if not r["complete"] and not r["problem"]]
    if unfinished:
        result(f"{len(unfinished)} run(s) did not finish (stopped, or still training):")
        result("ep = epochs so far/planned, * = val metric of the last epoch; continue with")
        for r in unfinished:
            result(f"  cnnlab train --resume {shlex.quote(r['path'])}")
    damaged = [r for r in rows if r["problem"]]
    if damaged:  # neither resumable nor usable: `train --resume` and `predict` refuse them
        result(f"{len(damaged)} run(s) damaged (neither usable nor resumable; train again):")
        for r in damaged:
            result(f"  {r['name']}: {r['problem']}")
    return table


def print_summary(run: Run) -> None:
    """Final metrics of one run (its report path: :func:`print_report_path`)."""
    from cnnlab.evaluation.metrics import macro_f1_note

    summary = run.summary
    table = Table(title=f"{run.name}: {summary.get('model')} ({summary.get('mode')})")
    table.add_column("split")
    for column in ("accuracy", "macro F1", "images"):
        table.add_column(column, justify="right")
    intervals, flat, notes = False, False, []
    for split, values in summary.get("metrics", {}).items():
        full = run.split_metrics(split) or {}
        if why := macro_f1_note(full):  # a class with no image here: say what macro F1 covers
            notes.append(f"({split}: {why})")
        cells = []
        for key in ("accuracy", "macro_f1"):
            ci = full.get(f"{key}_ci")
            intervals = intervals or bool(ci)
            # a bootstrap with nothing to vary (a perfect score) gives no interval, not x-x
            unknown = not ci and bool(full.get(f"{key}_ci_note"))
            flat = flat or unknown
            cells.append(_fmt(values.get(key)) + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
                         + (" (n/a)" if unknown else ""))  # fmt: skip
        table.add_row(split, *cells, _fmt(values.get("num_samples")))
    result(table)
    if intervals:
        result("(in brackets: the 95% interval the split's images allow)")
    if flat:
        result(
            "(n/a: every bootstrap resample gives the same macro F1 at a perfect or zero "
            "score, so no interval is claimed; the accuracy interval shows the uncertainty)"
        )
    for note in notes:
        result(note)
    result(
        f"best epoch {summary.get('best_epoch')}, training {summary.get('train_time_s', 0):.1f} s"
    )


def print_report_path(run: Run) -> None:
    """Where the run's report is (printed once it exists)."""
    result(f"report: {run.report}")
