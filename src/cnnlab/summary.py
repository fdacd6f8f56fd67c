"""Console tables of runs and results (no heavy imports: ``cnnlab runs`` must be instant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from cnnlab.console import result
from cnnlab.errors import CnnlabError
from cnnlab.runs import Run, list_runs


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "-" if value is None else str(value)


def _split_metric(summary: dict[str, Any], split: str, key: str) -> Any:
    return summary.get("metrics", {}).get(split, {}).get(key)


def runs_table(runs_dir: str | Path = "runs") -> Table:
    """Print (and return) a table of every run under ``runs_dir`` with its main metrics."""
    table = Table(title=f"runs in {runs_dir}", box=box.SIMPLE_HEAD)
    table.add_column("run", overflow="fold")
    table.add_column("model", overflow="fold")
    table.add_column("mode")
    for column in ("epochs", "val\nacc", "val\nF1", "test\nacc", "test\nF1", "time\n(s)"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in list_runs(runs_dir):
        try:
            summary = run.summary
        except CnnlabError:
            summary = {}
        name = run.name if summary else f"{run.name} (incomplete)"
        table.add_row(
            name, _fmt(summary.get("model")), _fmt(summary.get("mode")),
            _fmt(summary.get("epochs_run")),
            _fmt(_split_metric(summary, "val", "accuracy"), 3),
            _fmt(_split_metric(summary, "val", "macro_f1"), 3),
            _fmt(_split_metric(summary, "test", "accuracy"), 3),
            _fmt(_split_metric(summary, "test", "macro_f1"), 3),
            _fmt(summary.get("train_time_s"), 1),
        )  # fmt: skip
    if table.row_count == 0:
        result(f"no runs in {runs_dir} (train one with `cnnlab train DATA`)")
    else:
        result(table)
    return table


def print_summary(run: Run) -> None:
    """Final metrics of one run and the path of its report."""
    summary = run.summary
    table = Table(title=f"{run.name}: {summary.get('model')} ({summary.get('mode')})")
    table.add_column("split")
    for column in ("accuracy", "macro F1", "images"):
        table.add_column(column, justify="right")
    for split, values in summary.get("metrics", {}).items():
        table.add_row(
            split,
            _fmt(values.get("accuracy")),
            _fmt(values.get("macro_f1")),
            _fmt(values.get("num_samples")),
        )
    result(table)
    result(
        f"best epoch {summary.get('best_epoch')}, training {summary.get('train_time_s', 0):.1f} s"
    )
    result(f"report: {run.report}")
