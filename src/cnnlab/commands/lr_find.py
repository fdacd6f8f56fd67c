"""``cnnlab lr-find``: the learning-rate range test on a dataset, with a plot."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from cnnlab.commands.options import overwrite_option
from cnnlab.paths import expand_home


def lr_find_command(
    data: str = typer.Argument(..., help="Dataset folder or CSV manifest.", callback=expand_home),
    overrides: list[str] = typer.Argument(
        None, help="Config overrides KEY=VALUE, e.g. train.optimizer=adam"
    ),
    model: str = typer.Option(None, "--model", "-m", help="Model name (see `cnnlab models`)."),
    mode: str = typer.Option(None, help="scratch | frozen | finetune | partial:N | staged"),
    img_size: int = typer.Option(None, "--img-size", help="Input side in pixels."),
    batch_size: int = typer.Option(None, "--batch-size", help="Images per step."),
    seed: int = typer.Option(None, help="Seed for weights and batches (split: data.split_seed)."),
    config: Path = typer.Option(
        None, "--config", "-c", help="YAML config file.", callback=expand_home
    ),
    min_lr: float = typer.Option(1e-6, "--min-lr", help="Smallest lr tried."),
    max_lr: float = typer.Option(1.0, "--max-lr", help="Largest lr tried."),
    steps: int = typer.Option(100, help="Training steps in the test."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Where the plot goes [lr_find.png, or lr_find-2.png... if taken].",
        callback=expand_home,
    ),
    overwrite: bool = overwrite_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors."),
) -> None:
    """Find a good learning rate: train briefly with a rising lr and plot the loss.

    Example:

        cnnlab lr-find data/flowers --model cnn train.optimizer=sgd --out lr.png
    """
    from cnnlab import api
    from cnnlab.console import set_quiet
    from cnnlab.engine.lr_find import check_range
    from cnnlab.paths import check_writable_file

    if quiet:
        set_quiet(True)
    check_range(min_lr, max_lr, steps)  # before the scan and the model
    flags = {"model": model, "mode": mode, "img_size": img_size, "batch_size": batch_size,
             "seed": seed}  # fmt: skip
    values = api.short_values({k: v for k, v in flags.items() if v is not None})
    cfg = api.make_config(data, config=config, overrides=overrides or [], values=values)

    from cnnlab.api import prepare_training
    from cnnlab.console import warn
    from cnnlab.engine import lr_find as rt
    from cnnlab.paths import dataset_folder, free_file_name, outside_dataset

    # Never inside the dataset: the next scan would find the plot. The default name moves
    # to lr_find-2.png... rather than replace an earlier plot; a named --out is refused.
    chosen = out is not None
    out = outside_dataset(out, Path("lr_find.png"), dataset_folder(cfg.data.root), "--out")
    if not chosen:
        out = free_file_name(out)
    check_writable_file(out, "--out", overwrite)  # before the search, not after it
    prep = prepare_training(cfg)
    rt.check_images(len(prep.train_loader.dataset))
    lrs, losses, suggestion = rt.lr_find(prep.module, prep.train_loader, min_lr, max_lr, steps)
    reason = rt.distrust(lrs, losses, steps)
    rt.plot_lr_find(lrs, losses, float("nan") if reason else suggestion, out)
    if reason:
        typer.echo(f"no trustworthy learning rate: {reason}  (plot: {out})")
        raise typer.Exit(1)
    for note in rt.caveats(lrs, losses, suggestion):
        warn(note)
    typer.echo(f"suggested learning rate: {suggestion:.3g}  (plot: {out})")
    command = train_command(data, config, flags, overrides or [], prep.train.batch_size)
    typer.echo(f"train with: {command} train.lr={suggestion:.3g}")


# Set by train_command itself: the lr found, and the batch size it was found with.
_REPLACED = ("train.lr", "train.batch_size")


def train_command(
    data: str, config: Path | None, flags: dict, overrides: list[str], batch_size: int
) -> str:
    """``cnnlab train`` with every setting the range test ran with, quoted for a shell.

    The batch size is the one the test used (the lr that suits a batch size changes with it),
    set even when lr-find chose it.

    Example:
        >>> train_command("my data", None, {"model": "basenet", "img_size": 32}, ["a=[1, 2]"], 8)
        "cnnlab train 'my data' --model basenet --img-size 32 --batch-size 8 'a=[1, 2]'"
    """
    args = ["cnnlab", "train", data]
    if config is not None:
        args += ["--config", str(config)]
    for name, value in flags.items():
        if value is not None and name != "batch_size":
            args += [f"--{name.replace('_', '-')}", str(value)]
    args += ["--batch-size", str(batch_size)]
    args += [o for o in overrides if o.split("=", 1)[0].strip() not in _REPLACED]
    return " ".join(shlex.quote(a) for a in args)
